"""The ``orchestrator`` root command: options, the catalog, and exit statuses.

Exit statuses: 0 success; 1 ``verify`` or ``gc`` found a problem (or a blob is corrupt);
2 usage or validation error; 3 not found; 4 conflict (a compare-and-swap lost); 5 the
catalog stayed busy (DuckDB locked by other processes) or is unreachable, or the blob
store cannot be used (a read-only or full folder; an unreachable endpoint, a missing
bucket, denied credentials); 6 a tag policy refused the move (``PolicyError``); 130
interrupted (Ctrl-C); 141 the reader of the output went away (``| head``), as for any
piped Unix tool.
"""

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import click

import core
from core.environment import BLOB_ROOT_ENV, CACHE_DIR_ENV, CACHE_MAX_BYTES_ENV, DATABASE_URL_ENV

EXIT_PROBLEM, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_CONFLICT, EXIT_BUSY = 1, 2, 3, 4, 5
EXIT_POLICY = 6
EXIT_PIPE_CLOSED = 128 + 13  # SIGPIPE
EXIT_INTERRUPTED = 128 + 2  # SIGINT
EXIT_STATUSES = {
    core.IntegrityError: EXIT_PROBLEM,
    core.ValidationError: EXIT_USAGE,
    core.NotFoundError: EXIT_NOT_FOUND,
    core.PolicyError: EXIT_POLICY,  # a ConflictError: before it
    core.ConflictError: EXIT_CONFLICT,
    core.StorageBusyError: EXIT_BUSY,
    core.StorageUnavailableError: EXIT_BUSY,
}

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")


SERVE_LINGER = 3600.0
"""Seconds ``orchestrator serve`` keeps a DuckDB file open after a request while no other
process queues for it; one that does (a sensor, a CLI command) gets it when the request in
hand ends, or within ``IDLE_WATCH_INTERVAL`` of a lease idle for a while. Reopening costs
10-20 ms, which every burst of a step's requests paid with the default linger."""


class CatalogContext:
    """Opens the catalog on first use, closes it when the command ends."""

    def __init__(
        self, database_url: str | None, blob_root: str | None, cache_dir: str | None = None
    ) -> None:
        self.database_url = database_url
        self.blob_root = blob_root
        self.cache_dir = cache_dir
        self._catalog: core.Services | None = None

    @property
    def catalog(self) -> core.Services:
        """The catalog, created where the options point if it does not exist yet."""
        return self._open(create=True)

    @property
    def serving(self) -> core.Services:
        """The catalog as ``orchestrator serve`` holds it: on DuckDB it keeps the file
        between requests (``SERVE_LINGER``) until another process queues for it."""
        return self._open(create=True, linger=SERVE_LINGER)

    @property
    def existing(self) -> core.Services:
        """The catalog for every command but those that may start one (``workflow
        create``, ``serve``): a mistyped location is an error, not a new empty catalog."""
        return self._open(create=False)

    def _open(self, *, create: bool, linger: float | None = None) -> core.Services:
        if self._catalog is None:
            options: dict[str, Any] = {} if linger is None else {"linger": linger}
            self._catalog = core.connect(
                self.database_url,
                self.blob_root,
                create=create,
                cache_dir=self.cache_dir,
                **options,
            )
        return self._catalog

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()


def domain_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into a message on stderr and the documented exit status."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except core.OrchestratorError as error:
            status = next(
                (code for kind, code in EXIT_STATUSES.items() if isinstance(error, kind)),
                EXIT_PROBLEM,
            )
            click.echo(f"error: {error}", err=True)
            raise SystemExit(status) from None
        except BrokenPipeError:  # nobody reads the rest: stop quietly
            with contextlib.suppress(OSError, ValueError):  # no real stdout under test
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(EXIT_PIPE_CLOSED) from None

    return _quiet_on_interrupt(wrapper)


class _Interrupts:
    """Ctrl-C during a command. While the command's body runs, the first one raises
    ``KeyboardInterrupt``, and the command ends with status 130 and no traceback, even
    where a database driver turned it into an error of its own (DuckDB:
    ``RuntimeError('Query interrupted')``); before the body, the body does not start.
    Any other (a second, or one while the catalog closes) is only noted, so that the
    clean-up finishes."""

    def __init__(self) -> None:
        self.noted = False
        self.raising = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        first, self.noted = not self.noted, True
        if first and self.raising:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def handled(self) -> Iterator[None]:
        """Handle SIGINT until the command's context closes (in the main thread)."""
        self.noted = self.raising = False
        if threading.current_thread() is not threading.main_thread():  # no signals here
            yield
            return
        previous = signal.signal(signal.SIGINT, self.handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)


_interrupts = _Interrupts()


def _quiet_on_interrupt(command: Callable[P, R]) -> Callable[P, R]:
    """Ctrl-C ends the command with status 130 and no traceback, however it surfaced."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        if _interrupts.noted:  # before the command began
            raise SystemExit(EXIT_INTERRUPTED)
        _interrupts.raising = True
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            raise SystemExit(EXIT_INTERRUPTED) from None
        except Exception:
            if _interrupts.noted:
                raise SystemExit(EXIT_INTERRUPTED) from None
            raise
        finally:
            _interrupts.raising = False

    return wrapper


pass_catalog = click.make_pass_decorator(CatalogContext)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--database-url",
    envvar=DATABASE_URL_ENV,
    help=f"Catalog database (default: ${DATABASE_URL_ENV}, else "
    "duckdb:///.orchestrator/catalog.duckdb).",
)
@click.option(
    "--blob-root",
    envvar=BLOB_ROOT_ENV,
    help="Blob folder, or object store URL: s3://bucket/prefix, gs://..., az://container/... "
    f"(default: ${BLOB_ROOT_ENV}, else .orchestrator/blobs).",
)
@click.option(
    "--cache-dir",
    envvar=CACHE_DIR_ENV,
    help="Local read cache of an object store's blobs, verified, at most "
    f"${CACHE_MAX_BYTES_ENV} bytes (default 10 GiB) (default: ${CACHE_DIR_ENV}, else none).",
)
@click.pass_context
def cli(
    ctx: click.Context, database_url: str | None, blob_root: str | None, cache_dir: str | None
) -> None:
    """Inspect and steer the versioned DAG catalog.

    \b
    Exit statuses: 0 success, 1 verify found a problem, 2 usage or validation
    error, 3 not found, 4 conflict (a compare-and-swap lost), 5 catalog or blob
    store unusable now (busy, unreachable, read-only, full, missing bucket, denied
    credentials), 6 a tag policy refused the move, 130 interrupted, 141 the
    reader of the output went away.

    \b
    Example:
      orchestrator history main
    """
    ctx.with_resource(_interrupts.handled())  # left last: after the catalog has closed
    context = CatalogContext(database_url, blob_root, cache_dir)
    ctx.obj = context
    ctx.call_on_close(context.close)
