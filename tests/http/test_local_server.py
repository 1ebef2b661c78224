"""The local server: ``orchestrator serve --unix-socket --idle-exit``, and the steps that
find it, start it, and go on without it (``core.local_server``)."""

import multiprocessing
import os
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import core
from core import client, local_server
from core.client import ServedSteps, ServerUnreachableError
from core.local_server import LocalServer, LocalSteps, find_or_start, server_for
from core.unix_socket import socket_answers
from tests.http.server import ORCHESTRATOR, serve

WAIT = 60.0


def wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of this process is reaped, and is not)."""
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False
    except ChildProcessError:  # not this process's child
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def started_pid(server: LocalServer) -> int:
    return int(server.path("started").read_text())


def servers_on(path: Path) -> list[int]:
    """The processes whose command line names the socket ``path``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(path).encode() in command and alive(int(entry.name)):
                found.append(int(entry.name))
    return found


@pytest.fixture
def runtime(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private folder for this test's local servers' sockets."""
    directory = tmp_path_factory.mktemp("rt")
    directory.chmod(0o700)
    monkeypatch.setenv(local_server.RUNTIME_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def local(runtime: Path, tmp_path: Path) -> Iterator[LocalServer]:
    """The local server of a DuckDB catalog in ``tmp_path``; stopped after the test."""
    server = server_for(f"duckdb:///{tmp_path / 'catalog.duckdb'}", str(tmp_path / "blobs"))
    assert server is not None
    yield server
    for pid in servers_on(server.socket_path):
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not servers_on(server.socket_path), "the local server to stop")


def test_a_catalog_served_on_a_unix_socket_answers_only_its_owner(
    database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.sock"
    with serve(database_url, blob_root, tmp_path / "server.log", unix_socket=path) as url:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        steps = ServedSteps(url)
        value = steps.commit_output("run-1", "main", "orders", b"[1]", media_type="text/plain")
        assert steps.read(value.value) == b"[1]"
        steps.close()
    assert not path.exists(), "the server left its socket behind"


def test_a_second_server_on_a_live_socket_is_refused_and_a_dead_ones_socket_replaced(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # a socket file nobody listens on: a server that is gone
    database_url, blobs = f"duckdb:///{tmp_path / 'catalog.duckdb'}", tmp_path / "blobs"
    with serve(database_url, blobs, tmp_path / "server.log", unix_socket=path):
        second = subprocess.run(
            [ORCHESTRATOR, "--database-url", database_url, "serve", "--unix-socket", str(path)],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert second.returncode == 4, second.stderr
        assert f"another server already listens on {path}" in second.stderr
        assert socket_answers(path), "the refused server took the socket"


def test_an_idle_server_removes_its_socket_then_stops(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sock"
    database_url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    with (tmp_path / "server.log").open("w") as log:
        options = ["--database-url", database_url, "--blob-root", str(tmp_path / "b")]
        server = subprocess.Popen(
            [ORCHESTRATOR, *options, "serve", "--unix-socket", str(path), "--idle-exit", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: socket_answers(path), "the server to listen")
        steps = ServedSteps(f"http+unix://{str(path).replace('/', '%2F')}")
        steps.pin("run-1", "main")
        steps.close()
        assert server.wait(timeout=WAIT) == 0, (tmp_path / "server.log").read_text()
        assert not path.exists()
    finally:
        server.kill()


def test_many_steps_at_once_start_one_server_which_the_next_ones_find(
    local: LocalServer,
) -> None:
    answers: list[str | None] = []
    callers = [
        threading.Thread(target=lambda: answers.append(find_or_start(local, idle=60)))
        for _ in range(8)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert answers == [None] * 8, "a step waited for the server, or found one not started"
    wait_for(lambda: socket_answers(local.socket_path), "the local server to listen")
    assert servers_on(local.socket_path) == [started_pid(local)]
    assert find_or_start(local) == local.url
    assert stat.S_IMODE(local.directory.stat().st_mode) == 0o700


def test_a_server_that_died_is_started_again_after_the_pause(
    local: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_server, "RESTART_AFTER", 0.2)
    find_or_start(local, idle=60)
    wait_for(lambda: socket_answers(local.socket_path), "the local server to listen")
    first = started_pid(local)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not alive(first), "the server to die")
    assert local.socket_path.exists() and not socket_answers(local.socket_path)
    time.sleep(0.3)
    assert find_or_start(local, idle=60) is None
    wait_for(lambda: socket_answers(local.socket_path), "the second server to listen")
    assert started_pid(local) != first
    assert find_or_start(local) == local.url


def test_a_server_that_cannot_start_is_not_started_again_by_every_step(
    runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_server, "RESTART_AFTER", 3600.0)
    server = server_for(f"duckdb:///{tmp_path / 'missing' / 'c.duckdb'}", str(tmp_path / "b"))
    assert server is not None
    (tmp_path / "missing").write_text("a file where the catalog's folder should be")
    assert find_or_start(server, idle=60) is None
    first = started_pid(server)
    wait_for(lambda: not alive(first), "the failing server to exit")
    assert b"error" in server.path("log").read_bytes().lower()
    assert find_or_start(server, idle=60) is None
    assert started_pid(server) == first, "started again within RESTART_AFTER"


def test_each_catalog_has_its_own_server(runtime: Path, tmp_path: Path) -> None:
    one = server_for(f"duckdb:///{tmp_path / 'one.duckdb'}", str(tmp_path / "blobs"))
    two = server_for(f"duckdb:///{tmp_path / 'two.duckdb'}", str(tmp_path / "blobs"))
    again = server_for(f"duckdb:///{tmp_path / 'one.duckdb'}", str(tmp_path / "blobs"))
    assert one is not None and two is not None and again is not None
    assert one.socket_path != two.socket_path
    assert one.socket_path == again.socket_path


def test_a_runtime_folder_others_may_enter_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv(local_server.RUNTIME_DIR_ENV, str(shared))
    assert server_for(f"duckdb:///{tmp_path / 'c.duckdb'}") is None


def wanted_in_a_child(setting: bool | None) -> bool:
    return local_server.wanted(setting)


@pytest.mark.parametrize(
    ("environment", "setting", "in_child"),
    [("on", None, True), ("off", None, False), ("off", True, True), ("on", False, False)],
)
def test_only_step_processes_of_multiprocess_runs_use_a_local_server(
    monkeypatch: pytest.MonkeyPatch, environment: str, setting: bool | None, in_child: bool
) -> None:
    monkeypatch.setenv(local_server.LOCAL_SERVER_ENV, environment)
    assert local_server.wanted(setting) is False, "this process was not started for a step"
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(wanted_in_a_child, setting).result(timeout=120) is in_child


def test_steps_go_on_with_their_own_catalog_once_the_local_server_is_gone(
    database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    path = tmp_path / "catalog.sock"
    with core.connect(database_url, blob_root) as catalog:
        with serve(database_url, blob_root, tmp_path / "server.log", unix_socket=path) as url:
            served = ServedSteps(url)
            steps = LocalSteps(served, lambda: catalog.assets)
            first = steps.commit_output("run-1", "main", "a", b"1", media_type="text/plain")
            with pytest.raises(core.ValidationError, match="bogus"):  # raised, not redirected
                steps.pin("run-2", "main", publish="bogus")
            served.close()
        with pytest.raises(ServerUnreachableError):
            served.pin("run-1", "main")
        second = steps.commit_output("run-1", "main", "b", b"2", media_type="text/plain")
        assert steps.read(first.value) == b"1" and steps.read(second.value) == b"2"
        history = catalog.tags.get_history("main")
        assert [move.to_target_id for move in history[:-1]] == [
            move.from_target_id for move in history[1:]
        ]
        assert len(history) == 2


def test_a_start_that_fails_leaves_the_step_to_open_the_catalog_itself(
    local: LocalServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_more_processes(*args: object, **kwargs: object) -> None:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(local_server.subprocess, "Popen", no_more_processes)
    assert find_or_start(local, idle=60) is None
    assert "could not start a local catalog server" in caplog.text


def test_the_server_depends_on_the_catalog_the_environment_and_the_folder(
    runtime: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = "postgresql+psycopg://catalog@/catalog"
    keys = set()
    for variable, value in [(None, None), ("PGHOST", "db-1"), ("AWS_ENDPOINT_URL", "http://s3")]:
        if variable is not None:
            monkeypatch.setenv(variable, value)
        server = server_for(url, "s3://bucket/blobs")
        assert server is not None
        keys.add(server.key)
    monkeypatch.chdir(tmp_path)
    elsewhere = server_for(url, "s3://bucket/blobs")
    assert elsewhere is not None
    keys.add(elsewhere.key)
    assert len(keys) == 4


def test_a_relative_runtime_folder_is_taken_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(local_server.RUNTIME_DIR_ENV, "rt")
    server = server_for(f"duckdb:///{tmp_path / 'c.duckdb'}")
    assert server is not None
    assert server.socket_path.is_absolute() and server.socket_path.parent == tmp_path / "rt"
    ServedSteps(server.url)  # a URL the client takes


def test_a_request_that_may_have_reached_a_server_that_went_away_is_not_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client, "REUSE_IDLE", 3600.0)
    path = tmp_path / "catalog.sock"
    database_url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    with serve(database_url, tmp_path / "blobs", tmp_path / "server.log", unix_socket=path) as url:
        steps = ServedSteps(url)
        steps.pin("run-1", "main")
    with pytest.raises(core.StorageUnavailableError) as failed:
        steps.pin("run-1", "main")  # sent on the kept connection, which the server closed
    assert not isinstance(failed.value, ServerUnreachableError)


def test_a_server_whose_catalog_was_replaced_withdraws_and_the_steps_go_on_without_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "catalog.sock"
    database, blobs = tmp_path / "catalog.duckdb", tmp_path / "blobs"
    database_url = f"duckdb:///{database}"
    with serve(database_url, blobs, tmp_path / "server.log", unix_socket=path) as url:
        served = ServedSteps(url)
        served.commit_output("run-1", "main", "a", b"old", media_type="text/plain")
        served.close()
        old = tmp_path / "old"
        old.mkdir()
        for item in tmp_path.glob("catalog.duckdb*"):
            item.rename(old / item.name)  # as `rm -rf` of the catalog, then a new one
        blobs.rename(old / "blobs")
        with core.connect(database_url, blobs) as catalog:
            steps = LocalSteps(ServedSteps(url), lambda: catalog.assets)
            new = steps.commit_output("run-2", "main", "a", b"new", media_type="text/plain")
            assert steps.read(new.value) == b"new"
            assert [move.run_id for move in catalog.tags.get_history("main")] == ["run-2"]
        wait_for(lambda: not path.exists(), "the server to withdraw its socket")
    with core.connect(f"duckdb:///{old / 'catalog.duckdb'}", old / "blobs") as replaced:
        assert [move.run_id for move in replaced.tags.get_history("main")] == ["run-1"]


def test_stopping_leaves_a_process_that_took_a_dead_servers_id_alone(tmp_path: Path) -> None:
    started = tmp_path / "key.started"
    started.write_text(f"{os.getpid()}\n")  # this test's process: no server of key.sock
    local_server.stop_started(started)
    assert alive(os.getpid())
