"""Reading every tag policy, as the repository and the DuckDB write-behind store both do.

The policies are few and read by every commit that moves a tag, so on DuckDB they are
remembered in the lease's memo (``core.storage.session_info.MEMO``): while this process
holds the file only its own ordinary transactions change them, and those forget the memo's
copy (``forget_policies``).
"""

from collections.abc import Hashable
from datetime import UTC
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.domain import TagPolicy
from core.storage.cache import LRUCache
from core.storage.models import TagPolicyRow

policies = TagPolicyRow.__table__
MEMO_KEY = ("tag_policies", "")
"""Where the lease's memo keeps every policy."""

Memo = LRUCache[Hashable, Any]


def to_policy(row: Any) -> TagPolicy:
    return TagPolicy(
        pattern=row.pattern,
        immutable=bool(row.immutable),
        protected=bool(row.protected),
        updated_at=row.updated_at.replace(tzinfo=UTC),
        updated_by=row.updated_by,
    )


def read_policies(executor: Session | Connection, memo: Memo | None) -> tuple[TagPolicy, ...]:
    """Every policy, by pattern (from ``memo`` when it has them)."""
    if memo is not None and (known := memo.get(MEMO_KEY)) is not None:
        found: tuple[TagPolicy, ...] = known
        return found
    rows = executor.execute(select(policies).order_by(policies.c.pattern)).all()
    found = tuple(to_policy(row) for row in rows)
    if memo is not None:
        memo.put(MEMO_KEY, found)
    return found


def forget_policies(memo: Memo | None) -> None:
    """The policies changed: the memo's copy is stale."""
    if memo is not None:
        memo.discard(MEMO_KEY)
