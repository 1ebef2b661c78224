"""The unit of work's transactions: ``with uow() as work`` opens one transaction and binds
the repositories to it (the bundle of repositories is given by the composition root, so
storage never imports the repositories above it)."""

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy.orm import Session

from core.storage.db import Database
from core.storage.session_info import AFTER_COMMIT

W = TypeVar("W")


STAGED = "staged_cache_entries"
"""The ``session.info`` key of the cache entries a transaction made, by cache."""


class Publishes(Protocol):
    """A cache that takes the entries a transaction staged once it commits."""

    def publish(self, entries: dict[Any, Any]) -> None: ...


class UnitOfWorkFactory(Generic[W]):
    """``with uow() as work: ...`` commits when the outermost block exits cleanly and
    rolls back on any exception. Nested blocks in one thread join the outer transaction,
    so a use case that calls other services still commits once, all or nothing.
    ``work`` is ``bind(session)``: the repositories bound to the transaction."""

    def __init__(self, db: Database, bind: Callable[[Session], W]) -> None:
        self._db = db
        self._bind = bind

    @property
    def nested(self) -> bool:
        """Whether a block opened now would join an enclosing transaction."""
        return self._db.in_transaction

    def after_commit(self, call: Callable[[], None]) -> None:
        """Call ``call`` once this thread's open transaction commits (now, outside one);
        never, if it rolls back."""
        info = self._db.transaction_info()
        if info is None:
            call()
        else:
            info[AFTER_COMMIT].append(call)

    def staged(self, cache: Publishes, *, create: bool = False) -> dict[Any, Any] | None:
        """The entries ``cache`` holds for this thread's open transaction, handed to
        ``cache.publish`` when it commits (``None`` outside a transaction, or when it
        holds none and ``create`` is false)."""
        info = self._db.transaction_info()
        if info is None:
            return None
        by_cache: dict[int, dict[Any, Any]] = info.setdefault(STAGED, {})
        entries = by_cache.get(id(cache))
        if entries is None and create:
            entries = by_cache[id(cache)] = {}
            info[AFTER_COMMIT].append(lambda: cache.publish(entries))
        return entries

    @contextlib.contextmanager
    def __call__(self, *, deferred: bool = False) -> Iterator[W]:
        """A unit of work; ``deferred`` as in ``Database.transaction``."""
        with self._db.transaction(deferred=deferred) as session:
            yield self._bind(session)
