"""The local server: one ``orchestrator serve`` per catalog on this machine, on a unix
socket, that the step processes of multiprocess runs share, so that each step loads no
storage and opens no database.

A step finds it by its settings (``server_for``). When none answers, the step starts
one and opens the catalog itself this time (``find_or_start``): nobody waits for a server
to come up. The server holds a lock while it lives, so that one starts at a time and a
socket left by one that died is known for what it is; it stops after
``$ORCHESTRATOR_LOCAL_SERVER_IDLE`` seconds without a request.
"""

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.client import ServedSteps, ServerUnreachableError, unix_server_url
from core.environment import CATALOG_ENV
from core.step_catalog import StepCatalog
from core.unix_socket import socket_answers

log = logging.getLogger(__name__)

LOCAL_SERVER_ENV = "ORCHESTRATOR_LOCAL_SERVER"
"""``off`` (or ``0``, ``false``, ``no``): step processes open the catalog themselves."""
IDLE_ENV = "ORCHESTRATOR_LOCAL_SERVER_IDLE"
RUNTIME_DIR_ENV = "ORCHESTRATOR_RUNTIME_DIR"
DEFAULT_IDLE = 600.0
"""Seconds a local server lives without a request (``$ORCHESTRATOR_LOCAL_SERVER_IDLE``)."""
RESTART_AFTER = 10.0
"""Seconds after a start before another: a server that cannot come up is not started by
every step."""
STORE_ENV_PREFIXES = ("PG", "AWS_", "GOOGLE_", "AZURE_")
"""Environment that may choose the database (libpq's) or the object store (each cloud's):
part of which catalog a server serves."""
SOCKET_PATH_MAX = 100
"""Bytes a unix socket's path may take (108 on Linux, 104 on macOS, with room)."""
OFF = ("off", "0", "false", "no")


@dataclass(frozen=True)
class LocalServer:
    """Where the local server of one catalog lives: its socket, its lock (held by the
    server while it lives), its log, and ``started``, the process id of the last one
    started (the file's time is the start's)."""

    directory: Path
    key: str
    environment: Mapping[str, str]
    """The environment it starts with: the catalog's settings, as the step has them."""
    cwd: str

    @property
    def socket_path(self) -> Path:
        return self.directory / f"{self.key}.sock"

    @property
    def url(self) -> str:
        return unix_server_url(str(self.socket_path))

    def path(self, suffix: str) -> Path:
        return self.directory / f"{self.key}.{suffix}"

    def stop(self) -> None:
        """Stop the last server started here, if it still runs."""
        stop_started(self.path("started"))


def stop_started(started: Path) -> None:
    """Stop (SIGTERM) the server whose process id ``started`` (a ``<key>.started`` file)
    holds, if that process still runs and is the server of ``<key>.sock``: a process id
    since reused by another process is left alone (checked in ``/proc``: elsewhere,
    nothing is stopped)."""
    with contextlib.suppress(OSError, ValueError):  # gone already, or no /proc
        pid = int(started.read_text())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        if str(started.with_suffix(".sock")).encode() in command:
            os.kill(pid, signal.SIGTERM)


def local_steps(
    setting: bool | None,
    settings: tuple[str | None, str | None, str | None, int | None],
    direct: Callable[[], StepCatalog],
) -> "LocalSteps | None":
    """What a step asks of the catalog through its local server (``wanted(setting)``;
    ``settings``: database URL, blob root, cache folder and bound, as ``server_for``
    takes them), falling back to ``direct()``; ``None`` when the step should open the
    catalog itself (no local server wanted, or none answers yet: one is started)."""
    if not wanted(setting):
        return None
    server = server_for(*settings)
    url = None if server is None else find_or_start(server)
    return None if url is None else LocalSteps(ServedSteps(url), direct)


def wanted(setting: bool | None) -> bool:
    """Whether this process's steps should use a local server: when local servers are
    ``enabled(setting)``, and only in a step process started by a multiprocess executor
    (short-lived, one of many)."""
    return enabled(setting) and multiprocessing.parent_process() is not None


def enabled(setting: bool | None) -> bool:
    """``setting`` if given, else ``$ORCHESTRATOR_LOCAL_SERVER`` (on unless ``off``)."""
    if setting is None:
        return os.environ.get(LOCAL_SERVER_ENV, "on").strip().lower() not in OFF
    return setting


def answering(
    setting: bool | None, settings: tuple[str | None, str | None, str | None, int | None]
) -> str | None:
    """The URL of the local server of the catalog ``settings`` name (as ``server_for``
    takes them) when local servers are ``enabled(setting)`` and it answers now; none is
    started. The process that ran a run's steps records the run's end through it."""
    if not enabled(setting):
        return None
    server = server_for(*settings)
    return server.url if server is not None and socket_answers(server.socket_path) else None


def server_for(
    database_url: str | None = None,
    blob_root: str | None = None,
    cache_dir: str | None = None,
    cache_max_bytes: int | None = None,
) -> LocalServer | None:
    """The local server of the catalog these settings name (``None``: the environment's,
    as ``core.connect`` takes them), or ``None`` when this machine has no private place
    for its socket."""
    settings = (database_url, blob_root, cache_dir, cache_max_bytes)
    environment = dict(os.environ)
    for name, value in zip(CATALOG_ENV, settings, strict=True):
        if value is not None:
            environment[name] = str(value)
    cwd = os.getcwd()
    catalog = {
        name: value
        for name, value in environment.items()
        if name in CATALOG_ENV or name.startswith(STORE_ENV_PREFIXES)
    }
    identity = json.dumps([cwd, catalog, _code_identity()], sort_keys=True)
    key = hashlib.sha256(identity.encode()).hexdigest()[:20]
    directory = runtime_dir()
    if directory is None:
        return None
    if len(str(directory / f"{key}.sock").encode()) > SOCKET_PATH_MAX:
        log.warning("no local catalog server: %s is too long a path for a socket", directory)
        return None
    return LocalServer(directory, key, environment, cwd)


def find_or_start(server: LocalServer, idle: float | None = None) -> str | None:
    """The server's URL if it answers; else ``None``, having started it unless it is
    starting or was started less than ``RESTART_AFTER`` seconds ago (a start that fails
    is logged, and the step opens the catalog itself as it would anyway)."""
    if socket_answers(server.socket_path):
        return server.url
    try:
        _start_unless_starting(server, idle if idle is not None else _idle_setting())
    except OSError as exc:
        log.warning("could not start a local catalog server in %s: %s", server.directory, exc)
    return None


def _start_unless_starting(server: LocalServer, idle: float) -> None:
    lock = os.open(server.path("lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # a server holds it: it is starting (or stopping)
            return
        started = server.path("started")
        with contextlib.suppress(FileNotFoundError):
            last = started.stat().st_mtime
            if time.time() - last < RESTART_AFTER:
                log.warning(
                    "the local catalog server started %s did not come up; see %s",
                    time.ctime(last),
                    server.path("log"),
                )
                return
        server.socket_path.unlink(missing_ok=True)  # left by a server that is gone
        pid = _start(server, lock, idle)
        started.write_text(f"{pid}\n")
    finally:
        os.close(lock)  # the server keeps its own copy of the lock


def _start(server: LocalServer, lock: int, idle: float) -> int:
    """Start the server, handing it the lock; its process id."""
    command = [
        sys.executable,
        "-P",  # the step's working directory is not searched for the package's modules
        "-m",
        "orchestrator_cli",
        "serve",
        "--unix-socket",
        str(server.socket_path),
        "--idle-exit",
        f"{idle:g}",
        "--log-level",
        "warning",
    ]
    with server.path("log").open("ab") as output:
        process = subprocess.Popen(
            command,
            env=dict(server.environment),
            cwd=server.cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            pass_fds=(lock,),
            start_new_session=True,  # it outlives the step, and a Ctrl-C of the run
        )
    log.info("started a local catalog server on %s", server.socket_path)
    return process.pid


def runtime_dir() -> Path | None:
    """Where local servers' sockets live: ``$ORCHESTRATOR_RUNTIME_DIR``, else
    ``$XDG_RUNTIME_DIR/orchestrator``, else ``orchestrator-<uid>`` in the temporary
    folder; created private, and ``None`` if it is not this user's alone."""
    chosen = os.environ.get(RUNTIME_DIR_ENV)
    if chosen:
        directory = Path(chosen)
    elif os.environ.get("XDG_RUNTIME_DIR"):
        directory = Path(os.environ["XDG_RUNTIME_DIR"]) / "orchestrator"
    else:
        directory = Path(tempfile.gettempdir()) / f"orchestrator-{os.getuid()}"
    directory = directory.expanduser().absolute()
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.lstat()
    except OSError as exc:
        log.warning("no local catalog server: cannot use %s: %s", directory, exc)
        return None
    if status.st_uid != os.getuid() or status.st_mode & 0o077 or not directory.is_dir():
        log.warning("no local catalog server: %s is not private to this user", directory)
        return None
    return directory


def _idle_setting() -> float:
    text = os.environ.get(IDLE_ENV, "").strip()
    try:
        idle = float(text) if text else DEFAULT_IDLE
    except ValueError:
        idle = -1.0
    if not idle > 0:
        log.warning("ignoring %s=%r: expected seconds above 0", IDLE_ENV, text)
        return DEFAULT_IDLE
    return idle


def _code_identity() -> list[object]:
    """Changes when the catalog's code is installed or edited: the interpreter, and the
    path, size and modification time of each of the package's modules."""
    package = Path(__file__).parent
    modules = []
    for folder, subfolders, files in os.walk(package):
        subfolders[:] = sorted(name for name in subfolders if name != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                status = os.stat(os.path.join(folder, name))
                modules.append([folder, name, status.st_size, status.st_mtime_ns])
    return [sys.executable, modules]


STEP_METHODS = frozenset(name for name in vars(StepCatalog) if not name.startswith("_"))


class LocalSteps:
    """``StepCatalog`` through the local server until it cannot be reached (it stopped;
    nothing was sent), then through ``direct()`` for the rest of the process."""

    def __init__(self, served: ServedSteps, direct: Callable[[], StepCatalog]) -> None:
        self._served: ServedSteps | None = served
        self._direct_catalog: StepCatalog | None = None
        self._open_direct = direct
        self._lock = threading.Lock()

    def _direct(self) -> StepCatalog:
        with self._lock:  # threads that lose the server together open one catalog
            if self._direct_catalog is None:
                self._direct_catalog = self._open_direct()
            return self._direct_catalog

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in STEP_METHODS:
            raise AttributeError(name)

        @functools.wraps(getattr(StepCatalog, name))
        def call(*args: Any, **kwargs: Any) -> Any:
            served = self._served
            if served is not None:
                try:
                    return getattr(served, name)(*args, **kwargs)
                except ServerUnreachableError as exc:
                    log.warning("%s; this step opens the catalog itself", exc)
                    self._served = None
            return getattr(self._direct(), name)(*args, **kwargs)

        return call

    def close(self) -> None:
        if self._served is not None:
            self._served.close()
