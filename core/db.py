"""Engines, the DuckDB cross-process lock, and the unit of work.

DuckDB admits one process per database file, and its own file lock lost committed rows
in our runs (DESIGN.md), so every DuckDB connection, readers included, is taken under an
advisory ``flock`` on ``<database file>.lock`` held from before connect until after
close. Acquisition retries with jittered exponential backoff and raises
``StorageBusyError`` past the budget. Connections are never pooled (``NullPool``): an
idle process holds no lock. Postgres uses an ordinary pool.
"""

import contextlib
import fcntl
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from core.errors import StorageBusyError, ValidationError

log = logging.getLogger(__name__)

DEFAULT_BUSY_TIMEOUT = 60.0
"""Seconds a caller waits for a locked DuckDB file before ``StorageBusyError``."""

T = TypeVar("T")


class Backoff:
    """Jittered exponential backoff with a total time budget."""

    def __init__(self, budget: float, first: float = 0.001, cap: float = 0.025) -> None:
        self._deadline = time.monotonic() + budget
        self._delay = first
        self._cap = cap

    def sleep_or_give_up(self) -> bool:
        """Sleep before the next attempt; ``False`` when the budget is spent."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(remaining, random.uniform(0, self._delay)))
        self._delay = min(self._cap, self._delay * 2)
        return True


class DuckDBFileLock:
    """An exclusive ``flock`` on ``<database>.lock``, one per acquisition.

    Each acquisition opens its own file description, so threads of one process
    exclude each other as processes do.
    """

    def __init__(self, database_path: Path, budget: float) -> None:
        self.path = database_path.with_name(database_path.name + ".lock")
        self.budget = budget

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            backoff = Backoff(self.budget)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not backoff.sleep_or_give_up():
                        raise StorageBusyError(
                            f"DuckDB catalog {self.path.with_suffix('')} stayed locked by "
                            f"another process for more than {self.budget:g}s"
                        ) from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _is_duckdb_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


class Database:
    """An engine plus the unit of work: ``with db.transaction() as session: ...``.

    Transactions are re-entrant per thread: a service called inside another service's
    transaction joins it, so a use case commits once, all or nothing.
    """

    def __init__(self, url: str | URL, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> None:
        self.url = make_url(url)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        if self.url.get_backend_name() == "duckdb":
            database = self.url.database
            if not database or database == ":memory:":
                raise ValidationError(f"DuckDB catalog needs a file path, got {str(self.url)!r}")
            path = Path(database).expanduser().resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            self.url = self.url.set(database=str(path))
            self._file_lock: DuckDBFileLock | None = DuckDBFileLock(path, busy_timeout)
            self.engine: Engine = sa.create_engine(self.url, poolclass=NullPool)
        elif self.url.get_backend_name() == "postgresql":
            self._file_lock = None
            self.engine = sa.create_engine(
                self.url, pool_pre_ping=True, pool_size=5, max_overflow=10
            )
        else:
            raise ValidationError(
                f"unsupported database url {self.url.render_as_string(hide_password=True)!r}: "
                "use duckdb:///<file> or postgresql+psycopg://..."
            )

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction: committed when the outermost block exits cleanly."""
        current: Session | None = getattr(self._local, "session", None)
        if current is not None:
            yield current
            return
        with self._connection() as connection, Session(bind=connection) as session:
            self._local.session = session
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                self._local.session = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        if self._file_lock is None:
            with self.engine.connect() as connection:
                yield connection
            return
        with self._file_lock.held(), self._connect_duckdb() as connection:
            yield connection

    def _connect_duckdb(self) -> Connection:
        """Connect, retrying while a process outside our lock holds DuckDB's own lock."""
        backoff = Backoff(self.busy_timeout)
        while True:
            try:
                return self.engine.connect()
            except sa.exc.DBAPIError as exc:
                if not _is_duckdb_lock_error(exc):
                    raise
                if not backoff.sleep_or_give_up():
                    raise StorageBusyError(
                        f"DuckDB catalog {self.url.database} stayed locked for more than "
                        f"{self.busy_timeout:g}s: {exc.orig}"
                    ) from exc

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` in one transaction and return its result."""
        with self.transaction() as session:
            return work(session)

    def dispose(self) -> None:
        self.engine.dispose()
