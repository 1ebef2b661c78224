"""One DuckDB connection per process, held only while the process is busy.

DuckDB admits one process per database file, and its own file lock lost committed rows
in our runs (DESIGN.md), so a connection is only ever open under an exclusive ``flock``
on ``<database>.lock``. Opening a DuckDB connection costs 10-20 ms, so a process keeps
its connection (and the lock) for a short ``linger`` after a transaction, and gives both
up at once when another process queues for the file: waiters hold a shared ``flock`` on
``<database>.queue`` while they wait, and a watcher thread probes it every few
milliseconds. An idle process holds nothing once ``linger`` has passed.

While the lock is held no other process can write the file, so what this process read or
wrote stays current until it gives the lock up: ``DuckDBLease.memo`` keeps such facts
for one tenure and is emptied whenever the lock is taken or given up. For the same
reason writes may wait in a journal while the lock is held (``core.storage.db``): the lease calls
``on_open`` when a tenure starts, and ``settle`` before it lends the connection to an
ordinary transaction and before it gives the file up.
"""

import atexit
import contextlib
import fcntl
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from core.errors import NotDeferrable, StorageBusyError, StorageUnavailableError
from core.storage.cache import LRUCache
from core.storage.files import open_regular

log = logging.getLogger(__name__)

MEMO_SIZE = 4096
"""How many facts a lease's memo keeps (the least recently used go first)."""
WATCH_INTERVAL = 0.002
"""Seconds between the watcher's probes for processes queueing for the file."""


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
    """The exclusive lock on ``<database>.lock`` and the queue of processes waiting for it.

    Each acquisition opens its own file description, so two locks in one process exclude
    each other as two processes do.
    """

    def __init__(self, database_path: Path, budget: float) -> None:
        self.database_path = database_path
        self.budget = budget
        self._lock_path = database_path.with_name(database_path.name + ".lock")
        self._queue_path = database_path.with_name(database_path.name + ".queue")

    def acquire(self) -> int:
        """Wait (queued, with jittered backoff) for the lock; return its descriptor."""
        fd = self._open(self._lock_path, "the catalog's lock file")
        try:
            queue = self._open(self._queue_path, "the catalog's queue file")
        except BaseException:
            os.close(fd)
            raise
        try:
            fcntl.flock(queue, fcntl.LOCK_SH)
            backoff = Backoff(self.budget)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except BlockingIOError:
                    if not backoff.sleep_or_give_up():
                        os.close(fd)
                        raise StorageBusyError(
                            f"DuckDB catalog {self.database_path} stayed locked by another "
                            f"process for more than {self.budget:g}s"
                        ) from None
        finally:
            os.close(queue)

    @staticmethod
    def release(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    @staticmethod
    def _open(path: Path, what: str) -> int:
        """Open (or create) ``path``: a regular file, else ``StorageUnavailableError``."""
        try:
            return open_regular(path, os.O_RDWR | os.O_CREAT, what)
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot use {what} {str(path)!r}: {exc.strerror or exc}"
            ) from exc

    def others_waiting(self) -> bool:
        """Whether another process (or lock object) is queued for the file right now
        (``True`` when the queue file cannot be used: give the file up)."""
        try:
            queue = self._open(self._queue_path, "the catalog's queue file")
        except StorageUnavailableError:
            return True
        try:
            fcntl.flock(queue, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(queue)  # closing drops the probe's lock too
        return False


class DuckDBLease:
    """Lends this process's DuckDB connection to one transaction at a time."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        lock: DuckDBFileLock,
        *,
        linger: float,
        on_open: Callable[[Connection], None] = lambda _connection: None,
        settle: Callable[[Connection], None] = lambda _connection: None,
    ) -> None:
        self._connect = connect
        self._lock = lock
        self._linger = linger
        self._on_open = on_open
        self._settle = settle
        self._mutex = threading.Lock()
        self._connection: Connection | None = None
        self._lock_fd: int | None = None
        self._last_used = 0.0
        self._watcher: threading.Thread | None = None
        self._pid = os.getpid()
        self.memo = LRUCache[Hashable, Any](MEMO_SIZE)
        """Facts about the file valid for this tenure of the lock (see the module doc)."""
        _open_leases.add(self)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """The connection, opened (under the file lock) if this process holds none, and
        settled (``settle``) before it is lent."""
        with self._lent(opening=True) as connection:
            try:
                self._settle(connection)
            except BaseException:
                self._close(settle=False)  # the next tenure starts again from the journal
                raise
            yield connection

    @contextlib.contextmanager
    def held(self) -> Iterator[Connection]:
        """The connection of a tenure under way, lent as it is; ``NotDeferrable`` when
        this process does not hold the file now."""
        with self._lent(opening=False) as connection:
            yield connection

    @contextlib.contextmanager
    def _lent(self, *, opening: bool) -> Iterator[Connection]:
        if not self._mutex.acquire(timeout=self._lock.budget):
            raise StorageBusyError(
                f"DuckDB catalog {self._lock.database_path} stayed busy in this process for "
                f"more than {self._lock.budget:g}s"
            )
        try:
            if not opening and (self._connection is None or self._pid != os.getpid()):
                raise NotDeferrable("this process does not hold the DuckDB file")
            connection = self._open()
            try:
                yield connection
            except BaseException:
                if connection.invalidated or connection.closed:
                    self._close()
                raise
            finally:
                self._last_used = time.monotonic()
                if self._linger <= 0 or self._lock.others_waiting():
                    self._close()
                else:
                    self._watch()
        finally:
            self._mutex.release()

    def close(self) -> None:
        with self._mutex:
            self._close()

    def _open(self) -> Connection:
        if self._pid != os.getpid():  # a forked child must not touch its parent's handles
            self._connection, self._lock_fd, self._pid = None, None, os.getpid()
        if self._connection is None:
            self.memo.clear()
            self._lock_fd = self._lock.acquire()
            try:
                self._connection = self._connect()
                self._on_open(self._connection)
            except BaseException:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None
                self._lock.release(self._lock_fd)
                self._lock_fd = None
                raise
        return self._connection

    def _close(self, *, settle: bool = True) -> None:
        """Settle (unless told not to), close the connection, then release the file lock
        (in that order)."""
        if self._pid != os.getpid():
            return
        connection, self._connection = self._connection, None
        self.memo.clear()
        try:
            if (
                settle
                and connection is not None
                and not (connection.invalidated or connection.closed)
            ):
                try:
                    self._settle(connection)
                except Exception:  # the journal stays: whoever takes the file next folds it
                    log.exception("could not fold the journal of %s", self._lock.database_path)
            if connection is not None:
                connection.close()
        finally:
            if self._lock_fd is not None:
                fd, self._lock_fd = self._lock_fd, None
                self._lock.release(fd)

    def _watch(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(
                target=self._release_when_idle, name="duckdb-lease-watcher", daemon=True
            )
            self._watcher.start()

    def _release_when_idle(self) -> None:
        while True:
            time.sleep(WATCH_INTERVAL)
            if not self._mutex.acquire(blocking=False):
                continue  # a transaction is running; it decides again when it ends
            try:
                if self._connection is None:
                    return
                idle = time.monotonic() - self._last_used >= self._linger
                if idle or self._lock.others_waiting():
                    self._close()
                    return
            finally:
                self._mutex.release()


_open_leases: "weakref.WeakSet[DuckDBLease]" = weakref.WeakSet()


@atexit.register
def _close_open_leases() -> None:
    for lease in list(_open_leases):
        with contextlib.suppress(Exception):
            lease.close()
