"""SQL for tag policies and their append-only change history."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, literal, select, true
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.domain import TagPolicy, TagPolicyChange
from core.repository.artifact import join_target_skips, remember_skip_nodes
from core.repository.clock import aware, utc_now
from core.repository.errors import conflicts_on_integrity_errors
from core.storage.models import TagPolicyChangeRow, TagRow, policy_change_id_seq
from core.storage.session_info import MEMO
from core.storage.tag_policies import forget_policies, policies, read_policies, to_policy

changes = TagPolicyChangeRow.__table__
tags = TagRow.__table__


def _to_change(row: Row[Any]) -> TagPolicyChange:
    return TagPolicyChange(
        id=row.id,
        pattern=row.pattern,
        old_immutable=row.old_immutable,
        old_protected=row.old_protected,
        new_immutable=row.new_immutable,
        new_protected=row.new_protected,
        changed_at=aware(row.changed_at),
        changed_by=row.changed_by,
    )


class TagPolicyRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._memo = session.info.get(MEMO)
        self._read: tuple[TagPolicy, ...] | None = None
        """Every policy as ``all_with_tag`` read them (until this repository changes one)."""

    def all(self) -> tuple[TagPolicy, ...]:
        """Every policy, by pattern."""
        if self._read is not None:
            return self._read
        return read_policies(self._session, self._memo)

    def all_with_tag(
        self, name: str
    ) -> tuple[tuple[uuid.UUID | None, int] | None, tuple[TagPolicy, ...]]:
        """Tag ``name``'s target and revision (``None``: it has no row) and every policy,
        by pattern: what a commit that moves a tag reads first, in one statement that
        also keeps the target's skip-list nodes for a version added on it. ``all``
        answers from these policies until this repository changes one."""
        rows = self._session.execute(_WITH_TAG, {"name": name}).all()
        first = rows[0]
        tag = None if first.name is None else (first.target_id, int(first.revision))
        remember_skip_nodes(self._session, first.target_id, first)  # a version added on it
        self._read = tuple(to_policy(row) for row in rows if row.pattern is not None)
        return tag, self._read

    def get(self, pattern: str) -> TagPolicy | None:
        """The policy stored under exactly ``pattern``."""
        row = self._session.execute(select(policies).where(policies.c.pattern == pattern)).first()
        return None if row is None else to_policy(row)

    def lock(self, pattern: str) -> None:
        """Hold ``pattern``'s row until this transaction ends, so that concurrent changes
        of one policy record their old flags in turn (Postgres; on DuckDB one process at a
        time holds the file). A pattern with no row locks nothing."""
        if self._session.get_bind().dialect.name == "postgresql":
            self._session.execute(
                select(policies.c.pattern).where(policies.c.pattern == pattern).with_for_update()
            )

    @conflicts_on_integrity_errors
    def put(
        self,
        pattern: str,
        *,
        immutable: bool,
        protected: bool,
        updated_by: str | None,
        at: datetime | None = None,
        exists: bool,
    ) -> TagPolicy:
        """Store the policy of ``pattern`` (updating the row when ``exists``)."""
        values = {
            "immutable": immutable,
            "protected": protected,
            "updated_at": at or utc_now(),
            "updated_by": updated_by,
        }
        if exists:
            update = policies.update().where(policies.c.pattern == pattern).values(**values)
            row = self._session.execute(update.returning(*policies.c)).one()
        else:
            added = insert(policies).values(pattern=pattern, **values)
            row = self._session.execute(added.returning(*policies.c)).one()
        forget_policies(self._memo)
        self._read = None
        return to_policy(row)

    def delete(self, pattern: str) -> None:
        self._session.execute(policies.delete().where(policies.c.pattern == pattern))
        forget_policies(self._memo)
        self._read = None

    def append_change(
        self,
        pattern: str,
        old: TagPolicy | None,
        new: TagPolicy | None,
        *,
        changed_by: str | None,
        at: datetime | None = None,
    ) -> None:
        self._session.execute(
            insert(changes).values(
                id=policy_change_id_seq.next_value(),
                pattern=pattern,
                old_immutable=old and old.immutable,
                old_protected=old and old.protected,
                new_immutable=new and new.immutable,
                new_protected=new and new.protected,
                changed_at=at or utc_now(),
                changed_by=changed_by,
            )
        )

    def history(self, pattern: str | None) -> list[TagPolicyChange]:
        """Every change (of ``pattern``, when given), oldest first."""
        query = select(changes).order_by(changes.c.id)
        if pattern is not None:
            query = query.where(changes.c.pattern == pattern)
        return [_to_change(row) for row in self._session.execute(query).all()]


def _with_tag_query() -> Select[Any]:
    """``all_with_tag``'s statement, built once (building it costs more than running it)."""
    one = select(literal(1).label("one")).subquery()
    name = bindparam("name", type_=tags.c.name.type)
    joined, columns = join_target_skips(one.outerjoin(tags, tags.c.name == name), tags.c.target_id)
    return (
        select(tags.c.name, tags.c.target_id, tags.c.revision, *columns, *policies.c)
        .select_from(joined.outerjoin(policies, true()))
        .order_by(policies.c.pattern)
    )


_WITH_TAG = _with_tag_query()
