"""A cache of committed facts: what a transaction puts in it is seen by that transaction
at once, by every thread once it commits, and by no one if it rolls back."""

from typing import Any, Generic, TypeVar

from core.storage.cache import LRUCache
from core.storage.uow import UnitOfWorkFactory

K = TypeVar("K")
V = TypeVar("V")


class CommittedCache(Generic[K, V]):
    """An ``LRUCache`` whose entries put inside a transaction wait for its commit."""

    def __init__(self, uow: UnitOfWorkFactory[Any], capacity: int) -> None:
        self._uow = uow
        self._committed = LRUCache[K, V](capacity)

    def get(self, key: K) -> V | None:
        staged = self._uow.staged(self)
        if staged and key in staged:
            value: V = staged[key]
            return value
        return self._committed.get(key)

    def put(self, key: K, value: V) -> None:
        staged = self._uow.staged(self, create=True)
        if staged is None:  # outside a transaction
            self._committed.put(key, value)
        else:
            staged[key] = value

    def __contains__(self, key: object) -> bool:
        staged = self._uow.staged(self)
        return bool(staged and key in staged) or key in self._committed

    def publish(self, entries: dict[K, V]) -> None:
        """Take what a committed transaction staged."""
        for key, value in entries.items():
            self._committed.put(key, value)
