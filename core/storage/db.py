"""Engines and transactions (the unit of work's session).

DuckDB connections are lent by a ``DuckDBLease`` (see ``core.storage.duckdb.lease``): one per
process, only ever open under the cross-process file lock, given up as soon as another
process queues for the file and after a short linger when idle. Postgres uses an
ordinary connection pool.

A session carries what ``core.storage.session_info`` names: on DuckDB the lease's memo (facts
that stay true while this process holds the file; a rolled-back transaction empties it),
the ``SETTLE`` calls that finish work started in the transaction (blob files being
written while its statements run: each is called with ``True`` just before the commit,
where an exception stops the commit, or with ``False`` after a rollback), and the
``AFTER_COMMIT`` calls that let caches learn from it once it has committed.

A deferred transaction (``transaction(deferred=True)``) runs while this process already
holds the DuckDB file and writes its commit behind: its session runs no statement, its
``COMMIT_STORE`` takes the one decided commit record, and it commits by journaling that
record (``core.storage.duckdb.write_behind``); the lease folds the journal into the file
(``core.storage.duckdb.fold``) before any ordinary transaction, before it gives the file
up, and when a process takes the file after one died holding it. A deferred transaction
that meets anything else raises ``NotDeferrable`` before anything is kept. On Postgres
every transaction is ordinary.
"""

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.pool import NullPool

from core.errors import (
    NotFoundError,
    StorageBusyError,
    StorageUnavailableError,
    TransactionLostError,
)
from core.storage.database_url import check_database_url
from core.storage.duckdb.fold import FOLD_AT, fold, recover
from core.storage.duckdb.journal import Journal
from core.storage.duckdb.lease import Backoff, DuckDBFileLock, DuckDBLease
from core.storage.duckdb.write_behind import JournaledCommitStore, WriteBehind
from core.storage.files import check_regular
from core.storage.session_info import (
    AFTER_COMMIT,
    COMMIT_STORE,
    MEMO,
    SETTLE,
    NotDeferrable,
    Settle,
)

sa.dialects.registry.register(
    "duckdb.cached", "core.storage.duckdb.dialect", "CachingDuckDBDialect"
)

DEFAULT_BUSY_TIMEOUT = 60.0
"""Seconds a caller waits for a locked DuckDB file before ``StorageBusyError``."""
DEFAULT_LINGER = 0.2
"""Seconds an idle process keeps its DuckDB connection when no other process waits."""
PING_IDLE_AFTER = 0.5
"""Seconds a pooled Postgres connection may have been idle and still be lent without a
ping (as HikariCP's bypass window): one given back moments ago is taken to be alive."""
_IDLE_SINCE = "orchestrator_idle_since"


def _is_duckdb_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "could not set lock" in text or "conflicting lock" in text


class Database:
    """An engine plus the unit of work: ``with db.transaction() as session: ...``.

    Transactions are re-entrant per thread: a service called inside another service's
    transaction joins it, so a use case commits once, all or nothing.
    """

    def __init__(
        self,
        url: str | URL,
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        linger: float = DEFAULT_LINGER,
        create: bool = True,
    ) -> None:
        """``create=False`` refuses a DuckDB file that does not exist (``NotFoundError``)
        instead of creating it and its folder."""
        self.url = check_database_url(url)
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        if self.url.get_backend_name() == "duckdb":
            database = self.url.database
            assert database is not None, "check_database_url refuses a DuckDB url without a file"
            check_regular(Path(database).expanduser(), "the DuckDB catalog")
            path = Path(database).expanduser().resolve()
            if not create and not path.is_file():
                raise NotFoundError(f"no catalog at {str(path)!r}: nothing has been stored there")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageUnavailableError(
                    f"cannot create the folder of DuckDB catalog {str(path)!r}: {exc.strerror}"
                ) from exc
            self.url = self.url.set(database=str(path))
            self.engine: Engine = sa.create_engine(
                self.url.set(drivername="duckdb+cached"), poolclass=NullPool
            )
            self._journal = Journal(path.with_name(path.name + ".journal"))
            self._behind = WriteBehind()
            self._lease: DuckDBLease | None = DuckDBLease(
                self._connect_duckdb,
                DuckDBFileLock(path, busy_timeout),
                linger=linger,
                on_open=self._recover,
                before_lend=self._fold,
            )
        else:  # postgresql
            self._lease = None
            try:
                # no hstore columns: the first connection does not look the type up
                self.engine = sa.create_engine(
                    self.url, pool_size=5, max_overflow=10, use_native_hstore=False
                )
                event.listen(self.engine, "handle_error", _recognise_broken_connections)
                event.listen(self.engine, "checkin", _note_idle)
                event.listen(self.engine, "checkout", _pinging_when_idle(self.engine.dialect))
            except ModuleNotFoundError as exc:
                raise StorageUnavailableError(
                    f"a Postgres catalog needs {exc.name!r}, which is not installed: "
                    "pip install 'orchestrator-catalog[postgres]'"
                ) from exc

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def in_transaction(self) -> bool:
        """Whether this thread is inside ``transaction()`` (so a new block would join it)."""
        return getattr(self._local, "session", None) is not None

    def transaction_info(self) -> dict[str, Any] | None:
        """The ``session.info`` of this thread's open transaction (``None`` outside one)."""
        session: Session | None = getattr(self._local, "session", None)
        return None if session is None else session.info

    @contextlib.contextmanager
    def transaction(self, *, deferred: bool = False, autocommit: bool = False) -> Iterator[Session]:
        """One transaction: committed when the outermost block exits cleanly.

        ``deferred=True`` asks for a deferred transaction (see the module doc); it is an
        ordinary one on Postgres, and ``NotDeferrable`` on DuckDB when this process does
        not hold the file now. ``autocommit=True`` on Postgres commits each statement as
        it runs (no BEGIN or COMMIT is sent), for steps that need neither a snapshot nor
        all or nothing; on DuckDB it is an ordinary transaction.
        """
        current: Session | None = getattr(self._local, "session", None)
        if current is not None:
            yield current
            return
        deferred = deferred and self._lease is not None
        lent = self._held() if deferred else self._connection()
        with (
            lent as connection,
            _each_statement_committed(connection, autocommit and self._lease is None),
            Session(bind=connection) as session,
        ):
            if self._lease is not None:
                session.info[MEMO] = self._lease.memo
            if deferred:
                assert self._lease is not None  # only DuckDB defers
                session.info[COMMIT_STORE] = JournaledCommitStore(
                    connection, self._behind, self._lease.memo
                )
                event.listen(session, "do_orm_execute", _refuse_statements)
            settles: list[Settle] = []
            session.info[SETTLE] = settles
            committed: list[Callable[[], None]] = []
            session.info[AFTER_COMMIT] = committed
            self._local.session = session
            committing = False
            try:
                yield session
                for settle in settles:
                    settle(True)
                if deferred:
                    _end_reads(connection)
                    self._behind.commit(self._journal)
                else:
                    committing = True
                    session.commit()
            except BaseException as exc:
                try:
                    session.rollback()
                except sa.exc.DBAPIError as failed:
                    if failed.connection_invalidated:
                        pass  # the database dropped the transaction with the connection
                    elif self._lease is not None:
                        raise
                    else:
                        # The server's connection broke in words SQLAlchemy does not
                        # know ("another command is already in progress"): the server
                        # drops the transaction with it; it never goes back to the pool.
                        connection.invalidate()
                finally:
                    if deferred:
                        _end_reads(connection)
                        self._behind.discard()
                    if self._lease is not None:  # the memo may hold what was undone
                        self._lease.memo.clear()
                    for settle in settles:
                        with contextlib.suppress(Exception):
                            settle(False)
                if (failed_storage := self._storage_error(exc, committing=committing)) is not None:
                    raise failed_storage from exc
                raise
            finally:
                self._local.session = None
        for call in committed:
            call()

    def _storage_error(
        self, exc: BaseException, *, committing: bool
    ) -> StorageUnavailableError | None:
        """The domain error for a transaction the database could not carry out, or
        ``None`` for any other failure (raised as it is).

        DuckDB: an operational error (a full disk, a read-only or vanished file) ends
        the transaction with nothing kept. Postgres: a transaction the server dropped (a
        broken connection, a shutdown) is ``TransactionLostError`` before its commit was
        sent (nothing was kept), else ``StorageUnavailableError`` (it may have committed).
        """
        if not isinstance(exc, sa.exc.DBAPIError):
            return None
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        if self._lease is not None:
            if not isinstance(exc, sa.exc.OperationalError):
                return None
            return StorageUnavailableError(
                f"cannot write DuckDB catalog {self.url.database!r} (nothing of this "
                f"transaction was kept): {reason}"
            )
        if not exc.connection_invalidated and not isinstance(
            exc, sa.exc.OperationalError | sa.exc.InterfaceError
        ):
            return None
        where = self.url.render_as_string(hide_password=True)
        if committing:
            return StorageUnavailableError(
                f"the catalog database {where!r} dropped the transaction while it committed, "
                f"so whether it was kept is unknown (read before retrying): {reason}"
            )
        return TransactionLostError(
            f"the catalog database {where!r} dropped the transaction before it committed "
            f"(nothing was kept): {reason}"
        )

    @contextlib.contextmanager
    def _held(self) -> Iterator[Connection]:
        """The connection of this process's tenure of the DuckDB file, with the journal
        folded first once it has grown long."""
        assert self._lease is not None
        with self._lease.held() as connection:
            if self._journal.damaged:
                raise NotDeferrable("the journal must be folded and emptied first")
            if len(self._behind) >= FOLD_AT:
                self._fold(connection)
            yield connection

    def _recover(self, connection: Connection) -> None:
        """A new tenure: fold what the journal holds that is not in the file yet."""
        recover(connection, self._behind, self._journal)

    def _fold(self, connection: Connection) -> None:
        if len(self._behind) or self._journal.damaged:
            fold(connection, self._behind, self._journal)
            assert self._lease is not None
            self._lease.memo.clear()  # it may know tags as they were before the records

    @contextlib.contextmanager
    def one_connection(self) -> Iterator[None]:
        """Run this thread's transactions in the block on one server connection, checked
        out (and pinged) once, not once each (Postgres; DuckDB lends its own)."""
        if self._lease is not None or hasattr(self._local, "connection"):
            yield
            return
        self._local.connection = None  # checked out by the first transaction
        try:
            yield
        finally:
            held: Connection | None = self._local.connection
            del self._local.connection
            if held is not None:
                held.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        if self._lease is not None:
            with self._lease.connection() as connection:
                yield connection
            return
        if not hasattr(self._local, "connection"):  # outside ``one_connection``
            with self._connect_server() as connection:
                yield connection
            return
        held: Connection | None = self._local.connection
        if held is None or held.invalidated:  # a broken one is given up for a new one
            if held is not None:
                held.close()
            held = self._local.connection = self._connect_server()
        yield held

    def _connect_server(self) -> Connection:
        try:
            return self.engine.connect()
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StorageUnavailableError(
                f"cannot reach the catalog database "
                f"{self.url.render_as_string(hide_password=True)!r}: {reason}"
            ) from exc

    def _connect_duckdb(self) -> Connection:
        """Connect, retrying while a process outside our lock holds DuckDB's own lock."""
        database = Path(str(self.url.database))
        check_regular(database, "the DuckDB catalog")  # a pipe or device: DuckDB would hang
        check_regular(database.with_name(database.name + ".wal"), "the catalog's write-ahead log")
        backoff = Backoff(self.busy_timeout)
        while True:
            try:
                return self.engine.connect()
            except sa.exc.DBAPIError as exc:
                if not _is_duckdb_lock_error(exc):
                    reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                    raise StorageUnavailableError(
                        f"cannot open DuckDB catalog {self.url.database!r}: {reason}"
                    ) from exc
                if not backoff.sleep_or_give_up():
                    raise StorageBusyError(
                        f"DuckDB catalog {self.url.database} stayed locked for more than "
                        f"{self.busy_timeout:g}s: {exc.orig}"
                    ) from exc

    def dispose(self) -> None:
        """Give up this process's connections (and the DuckDB file lock)."""
        if self._lease is not None:
            self._lease.close()
        self.engine.dispose()


def _recognise_broken_connections(context: sa.engine.ExceptionContext) -> None:
    """Mark a broken Postgres connection as one, where SQLAlchemy does not know psycopg's
    words for it ("connection socket closed", "another command is already in
    progress"): then it is invalidated, never pooled, and its transaction is lost.

    A statement's ``OperationalError`` without an SQLSTATE comes from the client
    library, not the server: the connection broke (a server error, such as a deadlock,
    has an SQLSTATE).
    """
    if (
        isinstance(context.sqlalchemy_exception, sa.exc.OperationalError)
        and getattr(context.original_exception, "sqlstate", "") is None
    ):
        context.is_disconnect = True


def _note_idle(dbapi_connection: Any, record: Any) -> None:
    """A pooled connection was given back: note when."""
    record.info[_IDLE_SINCE] = time.monotonic()


def _pinging_when_idle(dialect: sa.Dialect) -> Callable[[Any, Any, Any], None]:
    """The pool's checkout check: a connection idle past ``PING_IDLE_AFTER`` is pinged,
    and one whose ping fails, whatever it raised (a ping of a dead socket may raise
    ``can't change 'autocommit' now``), is replaced by a new one."""

    def ping_when_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < PING_IDLE_AFTER:
            return  # a new connection, or one used moments ago
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"the pooled connection is gone: {exc}") from exc

    return ping_when_idle


@contextlib.contextmanager
def _each_statement_committed(connection: Connection, autocommit: bool) -> Iterator[None]:
    """``autocommit``: statements on ``connection`` commit as they run, in the block."""
    if not autocommit:
        yield
        return
    connection.execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield
    finally:
        if not connection.invalidated:
            connection.execution_options(isolation_level=connection.default_isolation_level)


def _refuse_statements(state: ORMExecuteState) -> None:
    """A deferred transaction's session runs no statement: its commit store reads."""
    raise NotDeferrable(f"a deferred transaction cannot run {type(state.statement).__name__}")


def _end_reads(connection: Connection) -> None:
    """End the transaction the commit store's reads began (they wrote nothing)."""
    if connection.in_transaction():
        connection.rollback()
