"""One DuckDB connection per process, held only while the process is busy.

DuckDB admits one process per database file, and its own file lock lost committed rows
in our runs (DESIGN.md), so a connection is only ever open under an exclusive ``flock``
on ``<database>.lock``. Opening a DuckDB connection costs 10-20 ms, so a process keeps
its connection (and the lock) for a short ``linger`` after a transaction, and gives both
up at once when another process queues for the file. An idle process holds nothing once
``linger`` has passed.

The file is handed over in order of arrival. A process that wants it takes a ticket, an
exclusive record lock on one byte of ``<database>.queue`` (byte ``n`` for ticket ``n``,
one more than the highest live ticket), holds the ticket while it waits and while it
holds the file, and takes the ``flock`` only when no lower ticket is left. The kernel
drops the locks of a process that dies, waiting or holding, so a dead process's ticket
is skipped and its ``flock`` freed: nobody waits for the dead. A watcher thread of the
holder probes the queue every few milliseconds for other tickets.

While the lock is held no other process can write the file, so what this process read or
wrote stays current until it gives the lock up: ``DuckDBLease.memo`` keeps such facts
for one tenure and is emptied whenever the lock is taken or given up. For the same
reason writes may wait in a journal while the lock is held (``core.storage.db``): the lease calls
``on_open`` when a tenure starts, and ``before_lend`` before it lends the connection to an
ordinary transaction and before it gives the file up.
"""

import atexit
import contextlib
import errno
import fcntl
import logging
import os
import random
import struct
import sys
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from core.errors import StorageBusyError, StorageUnavailableError
from core.storage.cache import LRUCache
from core.storage.files import open_regular
from core.storage.session_info import NotDeferrable

log = logging.getLogger(__name__)

MEMO_SIZE = 4096
"""How many facts a lease's memo keeps (the least recently used go first)."""
WATCH_INTERVAL = 0.002
"""Seconds between the watcher's probes for processes queueing for the file."""
IDLE_WATCH_INTERVAL = 0.05
"""Seconds between the probes once the file has been idle for ``IDLE_AFTER`` (seconds): a
process that lingers long (``orchestrator serve``) would otherwise wake 500 times a
second. A process that queues for an idle holder's file waits at most this long."""
IDLE_AFTER = 0.5
"""Seconds without a transaction after which a holder's watcher probes less often."""
TURN_INTERVAL = 0.001
"""Seconds between a waiting process's probes for the lower tickets still alive."""
STALL_PATIENCE = 1.0
"""Seconds a waiter keeps its place while the file stays free and tickets ahead of it
still wait; then it takes the file, so that a process stopped in the queue (Ctrl-Z, a
debugger) cannot stop everyone behind it. A file that is held keeps the queue in order."""

HELD_MARK = 0
"""The byte of ``<database>.lock`` that the holder also record-locks, so that waiters can
see the file is held without trying to take it."""

# Open file description locks (Linux) belong to one open file, as ``flock``s do, so two
# queues of one process are ordered as two processes are; elsewhere classic POSIX record
# locks belong to the process (one process's tickets are then not ordered among themselves).
_SETLK = getattr(fcntl, "F_OFD_SETLK", fcntl.F_SETLK)
_GETLK = getattr(fcntl, "F_OFD_GETLK", fcntl.F_GETLK)
_BSD_LAYOUT = sys.platform == "darwin" or "bsd" in sys.platform
_FLOCK = struct.Struct("qqihh" if _BSD_LAYOUT else "hhqqi4x")
"""``struct flock``: BSD's field order, else Linux's."""


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


def _record(kind: int, start: int, length: int) -> bytes:
    """A ``struct flock`` for ``length`` bytes (0: to the end of time) from ``start``."""
    if _BSD_LAYOUT:
        return _FLOCK.pack(start, length, 0, kind, os.SEEK_SET)
    return _FLOCK.pack(kind, os.SEEK_SET, start, length, 0)


def _locked_by_others(fd: int, start: int, length: int = 0) -> bool:
    """Whether another open file holds a record lock on ``length`` bytes from ``start``."""
    answer = fcntl.fcntl(fd, _GETLK, _record(fcntl.F_WRLCK, start, length))
    kind: int = _FLOCK.unpack(answer)[3 if _BSD_LAYOUT else 0]
    return kind != fcntl.F_UNLCK


def _try_lock(fd: int, start: int) -> bool:
    """Take an exclusive record lock on byte ``start``; ``False`` when another holds it."""
    try:
        fcntl.fcntl(fd, _SETLK, _record(fcntl.F_WRLCK, start, 1))
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _next_ticket(fd: int) -> int:
    """One more than the highest live ticket (0 when there is none): doubling, then
    halving, the start of a probed range that runs to the end of the file and beyond."""
    if not _locked_by_others(fd, 0):
        return 0
    low, high = 0, 1  # some ticket is >= low; none is >= high once the doubling stops
    while _locked_by_others(fd, high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if _locked_by_others(fd, middle):
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True)
class Tenure:
    """The descriptors of a held lock: the ``flock``ed lock file and the queue file that
    holds this tenure's ticket."""

    lock_fd: int
    queue_fd: int
    ticket: int


class DuckDBFileLock:
    """The exclusive lock on ``<database>.lock``, taken in order of arrival (a ticket in
    ``<database>.queue``; see the module doc).

    Each acquisition opens its own files, so two locks in one process exclude each other
    (and queue) as two processes do.
    """

    def __init__(self, database_path: Path, budget: float) -> None:
        self.database_path = database_path
        self.budget = budget
        self._lock_path = database_path.with_name(database_path.name + ".lock")
        self._queue_path = database_path.with_name(database_path.name + ".queue")

    def acquire(self) -> Tenure:
        """Take a ticket, wait for the lower ones to go, then take the lock (with jittered
        backoff should a process outside the queue hold it); ``StorageBusyError`` past the
        budget."""
        deadline = time.monotonic() + self.budget
        queue = self._open(self._queue_path, "the catalog's queue file")
        try:
            fd = self._open(self._lock_path, "the catalog's lock file")
        except BaseException:
            _close_descriptor(queue)
            raise
        try:
            ticket = self._take_ticket(queue)
            self._wait_for_turn(queue, fd, ticket, deadline)
            backoff = Backoff(deadline - time.monotonic())
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    _try_lock(fd, HELD_MARK)  # under the flock: nobody else can hold it
                    return Tenure(fd, queue, ticket)
                except BlockingIOError:
                    if not backoff.sleep_or_give_up():
                        raise self._busy() from None
        except BaseException:
            self._close(fd, queue)
            raise

    def release(self, tenure: Tenure) -> None:
        """Give the lock up, then the ticket: the next ticket's holder finds it free."""
        self._close(tenure.lock_fd, tenure.queue_fd)

    def others_waiting(self, tenure: Tenure) -> bool:
        """Whether another process (or lock object) holds a ticket besides ``tenure``'s."""
        try:
            return _locked_by_others(tenure.queue_fd, 0)
        except OSError:
            return True  # the queue cannot be read: give the file up

    def queued(self) -> int:
        """How many processes (or lock objects) hold or wait for the file right now."""
        queue = self._open(self._queue_path, "the catalog's queue file")
        try:
            return sum(_locked_by_others(queue, n, 1) for n in range(_next_ticket(queue)))
        finally:
            _close_descriptor(queue)

    def _take_ticket(self, queue: int) -> int:
        """Lock the byte after the highest live ticket (again when another took it first)."""
        while True:
            ticket = _next_ticket(queue)
            if _try_lock(queue, ticket):
                return ticket

    def _wait_for_turn(self, queue: int, lock: int, ticket: int, deadline: float) -> None:
        """Return once no ticket below ``ticket`` is alive, or once the file has stayed
        free for ``STALL_PATIENCE`` seconds while lower tickets wait (their processes are
        stopped); ``StorageBusyError`` at ``deadline``."""
        free_since: float | None = None
        while ticket > 0 and _locked_by_others(queue, 0, ticket):
            now = time.monotonic()
            if _locked_by_others(lock, HELD_MARK, 1):  # a tenure is under way
                free_since = None
            elif free_since is None:
                free_since = now
            elif now - free_since >= STALL_PATIENCE:
                return
            if now >= deadline:
                raise self._busy()
            time.sleep(min(deadline - now, TURN_INTERVAL))

    def _busy(self) -> StorageBusyError:
        return StorageBusyError(
            f"DuckDB catalog {self.database_path} stayed locked by another "
            f"process for more than {self.budget:g}s"
        )

    @staticmethod
    def _close(lock_fd: int, queue_fd: int) -> None:
        """Unlock and close both files (explicitly: a forked child may share them)."""
        try:
            with contextlib.suppress(OSError):
                fcntl.fcntl(lock_fd, _SETLK, _record(fcntl.F_UNLCK, HELD_MARK, 1))
                fcntl.flock(lock_fd, fcntl.LOCK_UN)
            _close_descriptor(lock_fd)
        finally:
            with contextlib.suppress(OSError):
                fcntl.fcntl(queue_fd, _SETLK, _record(fcntl.F_UNLCK, 0, 0))
            _close_descriptor(queue_fd)

    @staticmethod
    def _open(path: Path, what: str) -> int:
        """Open (or create) ``path``: a regular file, else ``StorageUnavailableError``."""
        try:
            fd = open_regular(path, os.O_RDWR | os.O_CREAT, what)
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot use {what} {str(path)!r}: {exc.strerror or exc}"
            ) from exc
        _lock_descriptors.add(fd)
        return fd


_lock_descriptors: set[int] = set()
"""The lock and queue files this process has open: a forked child closes its copies."""


def _close_descriptor(fd: int) -> None:
    _lock_descriptors.discard(fd)
    os.close(fd)


def _forget_inherited_locks() -> None:
    """In a forked child: close the copies of the parent's lock and queue files without
    unlocking them (they share the parent's locks), so that the locks go with the parent
    (a parent killed while it waits or holds must not leave its ticket to a child)."""
    for fd in list(_lock_descriptors):
        with contextlib.suppress(OSError):
            os.close(fd)
    _lock_descriptors.clear()


os.register_at_fork(after_in_child=_forget_inherited_locks)


class DuckDBLease:
    """Lends this process's DuckDB connection to one transaction at a time."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        lock: DuckDBFileLock,
        *,
        linger: float,
        on_open: Callable[[Connection], None] = lambda _connection: None,
        before_lend: Callable[[Connection], None] = lambda _connection: None,
    ) -> None:
        self._connect = connect
        self._lock = lock
        self._linger = linger
        self._on_open = on_open
        self._before_lend = before_lend
        self._mutex = threading.Lock()
        self._connection: Connection | None = None
        self._tenure: Tenure | None = None
        self._last_used = 0.0
        self._watcher: threading.Thread | None = None
        self._pid = os.getpid()
        self.memo = LRUCache[Hashable, Any](MEMO_SIZE)
        """Facts about the file valid for this tenure of the lock (see the module doc)."""
        _open_leases.add(self)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """The connection, opened (under the file lock) if this process holds none, and
        brought up to date (``before_lend``) before it is lent."""
        with self._lent(opening=True) as connection:
            try:
                self._before_lend(connection)
            except BaseException:
                self._close(bring_up_to_date=False)  # the next tenure starts again from the journal
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
                if self._linger <= 0 or self._others_waiting():
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
            self._connection, self._tenure, self._pid = None, None, os.getpid()
        if self._connection is None:
            self.memo.clear()
            self._tenure = self._lock.acquire()
            try:
                self._connection = self._connect()
                self._on_open(self._connection)
            except BaseException:
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None
                self._lock.release(self._tenure)
                self._tenure = None
                raise
        return self._connection

    def _close(self, *, bring_up_to_date: bool = True) -> None:
        """Bring the file up to date (``before_lend``, unless told not to), close the
        connection, then release the file lock (in that order)."""
        if self._pid != os.getpid():
            return
        connection, self._connection = self._connection, None
        self.memo.clear()
        try:
            if (
                bring_up_to_date
                and connection is not None
                and not (connection.invalidated or connection.closed)
            ):
                try:
                    self._before_lend(connection)
                except Exception:  # the journal stays: whoever takes the file next folds it
                    log.exception("could not fold the journal of %s", self._lock.database_path)
            if connection is not None:
                connection.close()
        finally:
            if self._tenure is not None:
                tenure, self._tenure = self._tenure, None
                self._lock.release(tenure)

    def _others_waiting(self) -> bool:
        """Whether another process queues for the file this process holds (``True`` when
        it holds none)."""
        return self._tenure is None or self._lock.others_waiting(self._tenure)

    def _watch(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(
                target=self._release_when_idle, name="duckdb-lease-watcher", daemon=True
            )
            self._watcher.start()

    def _release_when_idle(self) -> None:
        while True:
            quiet = time.monotonic() - self._last_used >= IDLE_AFTER
            time.sleep(IDLE_WATCH_INTERVAL if quiet else WATCH_INTERVAL)
            if not self._mutex.acquire(blocking=False):
                continue  # a transaction is running; it decides again when it ends
            try:
                if self._connection is None:
                    return
                idle = time.monotonic() - self._last_used >= self._linger
                if idle or self._others_waiting():
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
