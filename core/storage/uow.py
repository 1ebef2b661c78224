"""The unit of work's transactions, committed explicitly.

``with uow() as work: ...; work.commit()`` opens one transaction, binds the repositories
to it (the bundle is given by the composition root, so storage never imports the
repositories above it) and commits only when told to: a block that ends without
``commit()``, or with an exception, rolls back. ``uow.run(step)`` is the one place that
retries a step that lost a race and falls back from a deferred transaction to an
ordinary one.
"""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from core.storage.commit_record import CommitStore
from core.storage.db import Database
from core.storage.session_info import AFTER_COMMIT, COMMIT_STORE, SETTLE, NotDeferrable, Settle

T = TypeVar("T")

STAGED = "staged_cache_entries"
"""The ``session.info`` key of the cache entries a transaction made, by cache."""


class Publishes(Protocol):
    """A cache that takes the entries a transaction staged once it commits."""

    def publish(self, entries: dict[Any, Any]) -> None: ...


class Commits(Protocol):
    """A unit of work: repositories bound to one transaction, committed explicitly."""

    def commit(self) -> None: ...


W = TypeVar("W", bound=Commits)


class _RolledBack(Exception):
    """Ends a transaction that was not committed."""


class Transaction:
    """One open transaction: its session, its explicit ``commit()``, and what it does
    when it ends (settle its work, publish staged cache entries, call back)."""

    def __init__(self, session: Session, scope: contextlib.AbstractContextManager[Session]):
        self.session = session
        self._scope: contextlib.AbstractContextManager[Session] | None = scope

    @property
    def open(self) -> bool:
        return self._scope is not None

    @property
    def commit_store(self) -> CommitStore | None:
        """The storage's own store for decided commits, when it has one for this
        transaction (a deferred one); ``None``: commits are written through statements."""
        store: CommitStore | None = self.session.info.get(COMMIT_STORE)
        return store

    def commit(self) -> None:
        """Commit now (inside a caller's ``Database.transaction``, that one commits it)."""
        scope = self._end()
        scope.__exit__(None, None, None)

    def rollback(self, exc: BaseException | None = None) -> None:
        """Undo what the transaction did (a no-op once it ended)."""
        if self._scope is None:
            return
        scope = self._end()
        exc = exc or _RolledBack()
        scope.__exit__(type(exc), exc, exc.__traceback__)

    def _end(self) -> contextlib.AbstractContextManager[Session]:
        if self._scope is None:
            raise RuntimeError("this unit of work has ended: open another")
        scope, self._scope = self._scope, None
        return scope

    def on_end(self, settle: Settle) -> None:
        """Have the transaction call ``settle(True)`` before it commits (an exception
        stops the commit) or ``settle(False)`` after it rolled back."""
        self.session.info[SETTLE].append(settle)

    def after_commit(self, call: Callable[[], None]) -> None:
        """Call ``call`` once the transaction commits; never, if it rolls back."""
        self.session.info[AFTER_COMMIT].append(call)

    def staged(self, cache: Publishes, *, create: bool = False) -> dict[Any, Any] | None:
        """The entries ``cache`` holds for this transaction, handed to ``cache.publish``
        when it commits (``None`` when it holds none and ``create`` is false)."""
        by_cache: dict[int, dict[Any, Any]] = self.session.info.setdefault(STAGED, {})
        entries = by_cache.get(id(cache))
        if entries is None and create:
            entries = by_cache[id(cache)] = {}
            self.after_commit(lambda: cache.publish(entries))
        return entries


class UnitOfWorkFactory(Generic[W]):
    """Opens units of work: ``work`` is ``bind(transaction)``, the repositories bound to
    one transaction, with its ``commit()``."""

    def __init__(self, db: Database, bind: Callable[[Transaction], W]) -> None:
        self._db = db
        self._bind = bind

    @property
    def many_writers(self) -> bool:
        """Whether other processes write while this one does (Postgres; on DuckDB one
        process at a time holds the file)."""
        return self._db.dialect == "postgresql"

    def one_connection(self) -> contextlib.AbstractContextManager[None]:
        """Units of work in the block run on one connection to the server (one checkout,
        not one each)."""
        return self._db.one_connection()

    @contextlib.contextmanager
    def __call__(self, *, deferred: bool = False, autocommit: bool = False) -> Iterator[W]:
        """A unit of work, rolled back unless committed; ``deferred`` and ``autocommit``
        as in ``Database.transaction``. Inside a caller's ``Database.transaction`` (tests
        and benchmarks open one to group use cases) it joins that one, which commits."""
        scope = self._db.transaction(deferred=deferred, autocommit=autocommit)
        transaction = Transaction(scope.__enter__(), scope)
        try:
            yield self._bind(transaction)
        except BaseException as exc:
            transaction.rollback(exc)
            raise
        transaction.rollback()

    def run(
        self,
        step: Callable[[W], T],
        *,
        lost: type[Exception] | None = None,
        attempts: int = 1,
        deferred: bool = False,
        in_place: bool = False,
    ) -> T:
        """``step(work)`` in a unit of work of its own, committed; a step that raises
        ``lost`` (another writer won a race) is tried again in a new one, ``attempts``
        times in all. Inside a caller's transaction it is tried once (its writes are the
        caller's to retry), or, ``in_place``, ``attempts`` times there (for a step that
        writes nothing before it loses, such as a tag's compare-and-swap). ``deferred``
        tries a deferred transaction first and, when the step cannot be deferred
        (``NotDeferrable``), runs it in an ordinary one."""
        tries = attempts if in_place or not self._db.in_transaction else 1
        for attempt in range(1, tries + 1):
            try:
                if deferred:
                    with contextlib.suppress(NotDeferrable):
                        return self._committed(step, deferred=True)
                return self._committed(step, deferred=False)
            except Exception as exc:
                if lost is None or not isinstance(exc, lost) or attempt == tries:
                    raise
        raise AssertionError("unreachable")

    def _committed(self, step: Callable[[W], T], *, deferred: bool) -> T:
        with self(deferred=deferred) as work:
            result = step(work)
            work.commit()
        return result
