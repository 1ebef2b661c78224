"""A cache of committed facts: what a transaction puts in it is seen by that transaction
at once, by every thread once it commits, and by no one if it rolls back."""

from typing import Any, Generic, Protocol, TypeVar

from core.storage.cache import LRUCache
from core.storage.uow import Publishes

K = TypeVar("K")
V = TypeVar("V")


class Stages(Protocol):
    """A unit of work that holds cache entries until it commits."""

    def staged(self, cache: Publishes, *, create: bool = False) -> dict[Any, Any] | None: ...


class CommittedCache(Generic[K, V]):
    """An ``LRUCache`` whose entries put by a unit of work wait for its commit; outside
    one (``work=None``) only committed entries are seen, and a put is committed."""

    def __init__(self, capacity: int) -> None:
        self._committed = LRUCache[K, V](capacity)

    def get(self, key: K, work: Stages | None = None) -> V | None:
        staged = None if work is None else work.staged(self)
        if staged and key in staged:
            value: V = staged[key]
            return value
        return self._committed.get(key)

    def put(self, key: K, value: V, work: Stages | None = None) -> None:
        staged = None if work is None else work.staged(self, create=True)
        if staged is None:
            self._committed.put(key, value)
        else:
            staged[key] = value

    def contains(self, key: K, work: Stages | None = None) -> bool:
        staged = None if work is None else work.staged(self)
        return bool(staged and key in staged) or key in self._committed

    def publish(self, entries: dict[K, V]) -> None:
        """Take what a committed transaction staged."""
        for key, value in entries.items():
            self._committed.put(key, value)
