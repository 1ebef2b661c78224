"""SQL for tags and their append-only history.

A move is one conditional ``UPDATE ... RETURNING`` (or an insert-if-absent ``RETURNING``
for a name never used, see ``core.storage.duckdb.inserts``): no row back means the swap
lost. The history row is inserted after the tag row is written, so on Postgres the row
lock orders one tag's moves and their ids follow their commit order.

On DuckDB the live tags this process read or moved are remembered in the lease's memo
(``core.storage.session_info.MEMO``): while it holds the file nobody else can move them, so a
commit that moves the same tag again skips reading it.
"""

import functools
import uuid
from collections.abc import Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import BindParameter, Column, Row, Select, Update, bindparam, null, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert, ReturningUpdate

from core.domain import ArtifactKind, Tag, TagMove
from core.repository.artifact import join_target_skips, remember_skip_nodes
from core.repository.clock import aware, utc_now
from core.repository.errors import conflicts_on_integrity_errors
from core.storage.cache import LRUCache
from core.storage.commit_record import TagSwap
from core.storage.duckdb.inserts import insert_if_absent
from core.storage.models import TagMoveRow, TagRow, tag_move_id_seq
from core.storage.session_info import MEMO

tags = TagRow.__table__
moves = TagMoveRow.__table__


def _to_tag(row: Row[Any] | SimpleNamespace) -> Tag:
    return Tag(
        name=row.name,
        target_kind=ArtifactKind(row.target_kind),
        target_id=row.target_id,
        revision=row.revision,
        created_at=aware(row.created_at),
        updated_at=aware(row.updated_at),
        updated_by=row.updated_by,
    )


def _live(row: dict[str, Any]) -> Tag | None:
    """The tag of a row as a dict, ``None`` if it is deleted."""
    return None if row["target_id"] is None else _to_tag(SimpleNamespace(**row))


def _to_move(row: Row[Any] | SimpleNamespace) -> TagMove:
    return TagMove(
        id=row.id,
        tag_name=row.tag_name,
        from_target_id=row.from_target_id,
        to_target_id=row.to_target_id,
        revision=row.revision,
        moved_at=aware(row.moved_at),
        moved_by=row.moved_by,
        reason=row.reason,
        run_id=row.run_id,
    )


class TagRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._memo: LRUCache[tuple[str, str], Tag] | None = session.info.get(MEMO)

    def get(self, name: str) -> Tag | None:
        """The live tag called ``name`` (``None`` if absent or deleted)."""
        if self._memo is not None and (tag := self._memo.get(("tag", name))) is not None:
            return tag
        found = self._row(name)
        tag = None if found is None else _live(found)
        self._remember(name, tag)
        return tag

    def _row(self, name: str) -> dict[str, Any] | None:
        """The row of ``name``, deleted or not."""
        row = self._session.execute(select(tags).where(tags.c.name == name)).first()
        return None if row is None else dict(row._mapping)

    def _remember(self, name: str, tag: Tag | None) -> None:
        if self._memo is None:
            return
        if tag is None:
            self._memo.discard(("tag", name))
        else:
            self._memo.put(("tag", name), tag)

    def lock(self, name: str) -> tuple[uuid.UUID | None, int] | None:
        """Hold ``name``'s row until this transaction ends, so that writers who decide a
        move from a long read (a merge) take turns instead of losing races (Postgres; on
        DuckDB one process at a time holds the file): the target and revision it holds
        then, read in the same statement. ``None`` when nothing was read: on DuckDB, or
        for a name with no row (which locks nothing)."""
        if self._session.get_bind().dialect.name != "postgresql":
            return None
        row = self._session.execute(_LOCK, {"name": name}).first()
        if row is None:
            return None
        remember_skip_nodes(self._session, row.target_id, row)  # a version added on it
        return row.target_id, int(row.revision)

    def revision(self, name: str) -> int:
        """How many moves ``name`` has had (0 if never created), deleted or not."""
        row = self._row(name)
        return 0 if row is None else int(row["revision"])

    def list_live(self) -> list[Tag]:
        rows = self._session.execute(
            select(tags).where(tags.c.target_id.is_not(None)).order_by(tags.c.name)
        ).all()
        return [_to_tag(row) for row in rows]

    @conflicts_on_integrity_errors
    def insert(
        self,
        name: str,
        target_id: uuid.UUID,
        target_kind: ArtifactKind,
        updated_by: str | None,
        at: datetime | None = None,
    ) -> Tag | None:
        """Create a never-used name at revision 1 (at ``at``, default now); ``None`` if
        the name has a row."""
        now = at or utc_now()
        values = {
            "name": name,
            "target_id": target_id,
            "target_kind": target_kind.value,
            "revision": 1,
            "created_at": now,
            "updated_at": now,
            "updated_by": updated_by,
        }
        row = insert_if_absent(
            self._session, tags, values, ("name",), returning=tuple(tags.c.keys())
        )
        if row is None:
            return None
        tag = _to_tag(row)
        self._remember(name, tag)
        return tag

    @conflicts_on_integrity_errors
    def swap(
        self,
        name: str,
        *,
        expected_target_id: uuid.UUID | None,
        expected_revision: int | None,
        new_target_id: uuid.UUID | None,
        new_target_kind: ArtifactKind | None,
        updated_by: str | None,
        at: datetime | None = None,
    ) -> int | None:
        """Point ``name`` at ``new_target_id`` if it still points at ``expected_target_id``
        (and has ``expected_revision``, when given). Returns the new revision, or ``None``
        when the swap lost. A ``None`` target is a deleted tag."""
        statement = _swap_query(expected_target_id is not None, expected_revision is not None)
        params = _swap_params(
            name, expected_target_id, expected_revision, new_target_id, new_target_kind,
            updated_by, at or utc_now(),
        )  # fmt: skip
        row = self._session.execute(statement, params).first()
        # a lost swap means whatever we knew of the tag is stale; a deleted one is not live
        self._remember(name, None if row is None or row.target_id is None else _to_tag(row))
        return None if row is None else row.revision

    @conflicts_on_integrity_errors
    def _swap_with_move(
        self,
        name: str,
        *,
        expected_target_id: uuid.UUID | None,
        expected_revision: int | None,
        new_target_id: uuid.UUID | None,
        new_target_kind: ArtifactKind | None,
        moved_by: str | None,
        reason: str | None,
        run_id: str | None,
        at: datetime | None,
    ) -> int | None:
        """Postgres: ``swap`` and its history row in one statement (the row is inserted
        from the updated tag row, so after it is written); the new revision, or ``None``
        when the swap lost and nothing was written."""
        statement = _swap_with_move_query(
            expected_target_id is not None, expected_revision is not None
        )
        params = _swap_params(
            name, expected_target_id, expected_revision, new_target_id, new_target_kind,
            moved_by, at or utc_now(),
        )  # fmt: skip
        revision = self._session.scalar(statement, {**params, "reason": reason, "run_id": run_id})
        return None if revision is None else int(revision)

    @conflicts_on_integrity_errors
    def append_move(
        self,
        name: str,
        *,
        from_target_id: uuid.UUID | None,
        to_target_id: uuid.UUID | None,
        revision: int,
        moved_by: str | None,
        reason: str | None,
        run_id: str | None,
        at: datetime | None = None,
    ) -> None:
        values = {
            "tag_name": name,
            "from_target_id": from_target_id,
            "to_target_id": to_target_id,
            "revision": revision,
            "moved_at": at or utc_now(),
            "moved_by": moved_by,
            "reason": reason,
            "run_id": run_id,
        }
        self._session.execute(insert(moves).values(id=tag_move_id_seq.next_value(), **values))

    def move(
        self,
        name: str,
        *,
        expected_target_id: uuid.UUID | None,
        expected_revision: int | None,
        new_target_id: uuid.UUID | None,
        new_target_kind: ArtifactKind | None,
        moved_by: str | None,
        reason: str | None,
        run_id: str | None,
        at: datetime | None = None,
    ) -> int | None:
        """``swap`` (or, for a name never used, ``insert``) and its history row: the new
        revision, or ``None`` when the move lost and nothing was written. On Postgres
        the swap and its history row are one statement."""
        together = self._session.get_bind().dialect.name == "postgresql"
        if together:
            revision = self._swap_with_move(
                name, expected_target_id=expected_target_id, expected_revision=expected_revision,
                new_target_id=new_target_id, new_target_kind=new_target_kind, moved_by=moved_by,
                reason=reason, run_id=run_id, at=at,
            )  # fmt: skip
        else:
            revision = self.swap(
                name, expected_target_id=expected_target_id, expected_revision=expected_revision,
                new_target_id=new_target_id, new_target_kind=new_target_kind,
                updated_by=moved_by, at=at,
            )  # fmt: skip
        if revision is None:
            creating = expected_target_id is None and expected_revision in (None, 0)
            if not creating or new_target_id is None:
                return None
            assert new_target_kind is not None, "a tag's target has a kind"
            created = self.insert(name, new_target_id, new_target_kind, moved_by, at)
            if created is None:
                return None
            revision, together = created.revision, False
        if not together:
            self.append_move(
                name, from_target_id=expected_target_id, to_target_id=new_target_id,
                revision=revision, moved_by=moved_by, reason=reason, run_id=run_id, at=at,
            )  # fmt: skip
        return revision

    @conflicts_on_integrity_errors
    def move_line(self, name: str, swaps: Sequence[TagSwap], at: Sequence[datetime]) -> int | None:
        """Postgres: moves of ``name`` one after another (each from the one before's
        target, at ``at``), as one compare-and-swap from the first's expected target and
        revision and their history rows, in two statements; the last revision, or ``None``
        when the swap lost and nothing was written."""
        first, last = swaps[0], swaps[-1]
        revision = self._session.scalar(
            _MOVE_LINE,
            {
                "tag": name,
                "expected_target_id": first.from_target_id,
                "expected_revision": first.expected_revision,
                "new_target_id": last.to_target_id,
                "new_target_kind": last.target_kind.value,
                "now": at[-1],
                "moved_by": last.moved_by,
                "moves": len(swaps),
            },
        )
        self._remember(name, None)
        if revision is None:
            return None
        history = [
            {
                "tag_name": name,
                "from_target_id": swap.from_target_id,
                "to_target_id": swap.to_target_id,
                "revision": first.expected_revision + index,
                "moved_at": moved_at,
                "moved_by": swap.moved_by,
                "reason": swap.reason,
                "run_id": swap.run_id,
            }
            for index, (swap, moved_at) in enumerate(zip(swaps, at, strict=True), start=1)
        ]
        self._session.execute(_APPEND_MOVES, history)
        return int(revision)

    def history(self, name: str) -> list[TagMove]:
        """Every move of ``name``, oldest first."""
        rows = self._session.execute(
            select(moves).where(moves.c.tag_name == name).order_by(moves.c.id)
        ).all()
        return [_to_move(row) for row in rows]

    def moves_after(self, name: str, after_id: int, limit: int) -> list[TagMove]:
        """Moves of ``name`` with an id above ``after_id``, oldest first (a sensor's poll)."""
        rows = self._session.execute(
            select(moves)
            .where(moves.c.tag_name == name, moves.c.id > after_id)
            .order_by(moves.c.id)
            .limit(limit)
        ).all()
        return [_to_move(row) for row in rows]

    def move_at(self, name: str, position: int) -> TagMove | None:
        """The move ``position`` steps back from the latest (0 = the latest), as in a
        reflog: one lookup by revision, since a tag's moves are numbered 1, 2, 3..."""
        revision = self.revision(name) - position
        if revision < 1:
            return None
        row = self._session.execute(
            select(moves).where(moves.c.tag_name == name, moves.c.revision == revision)
        ).first()
        return None if row is None else _to_move(row)

    def move_as_of(self, name: str, instant: datetime) -> TagMove | None:
        """The last move of ``name`` made at or before ``instant`` (naive UTC), through
        the index on ``(tag_name, moved_at)``."""
        row = self._session.execute(
            select(moves)
            .where(moves.c.tag_name == name, moves.c.moved_at <= instant)
            .order_by(moves.c.moved_at.desc(), moves.c.revision.desc())
            .limit(1)
        ).first()
        return None if row is None else _to_move(row)

    def last_move(self, name: str) -> TagMove | None:
        row = self._session.execute(
            select(moves).where(moves.c.tag_name == name).order_by(moves.c.id.desc()).limit(1)
        ).first()
        return None if row is None else _to_move(row)


def _swap_params(
    name: str,
    expected_target_id: uuid.UUID | None,
    expected_revision: int | None,
    new_target_id: uuid.UUID | None,
    new_target_kind: ArtifactKind | None,
    moved_by: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The parameters of ``_compare_and_swap``'s statements (none is named as a column:
    an UPDATE's parameter named as a column sets it)."""
    return {
        "tag": name,
        "expected_target_id": expected_target_id,
        "expected_revision": expected_revision,
        "new_target_id": new_target_id,
        "new_target_kind": None if new_target_kind is None else new_target_kind.value,
        "now": now,
        "moved_by": moved_by,
    }


def _lock_query() -> Select[Any]:
    """``TagRepository.lock``'s statement, built once (building it costs more than running
    it): ``:name``'s row locked, its target and revision, and its target's skip nodes."""
    joined, columns = join_target_skips(tags, tags.c.target_id)
    return (
        select(tags.c.target_id, tags.c.revision, *columns)
        .select_from(joined)
        .where(tags.c.name == bindparam("name", type_=tags.c.name.type))
        .with_for_update(of=tags)
    )


_LOCK = _lock_query()


def _param(key: str, column: Column[Any]) -> BindParameter[Any]:
    """A bind parameter ``key`` typed as ``column``."""
    return bindparam(key, type_=column.type)


@functools.cache
def _compare_and_swap(
    expects_target: bool, expects_revision: bool, *, line: bool = False
) -> Update:
    """A tag's compare-and-swap for each shape of swap, built once (building it costs more
    than running it): ``:tag``'s row, if it points at ``:expected_target_id`` (when
    ``expects_target``; else at nothing: a deleted tag, or a name never used) and has
    ``:expected_revision`` (when ``expects_revision``), points at ``:new_target_id`` and
    its revision goes up by one (by ``:moves``, for a ``line`` of moves)."""
    now = _param("now", tags.c.updated_at)
    conditions = [
        tags.c.name == _param("tag", tags.c.name),
        tags.c.target_id == _param("expected_target_id", tags.c.target_id)
        if expects_target
        else tags.c.target_id.is_(None),
    ]
    if expects_revision:
        conditions.append(tags.c.revision == _param("expected_revision", tags.c.revision))
    values: dict[str, Any] = {
        "target_id": _param("new_target_id", tags.c.target_id),
        "target_kind": _param("new_target_kind", tags.c.target_kind),
        "revision": tags.c.revision + (_param("moves", tags.c.revision) if line else 1),
        "updated_at": now,
        "updated_by": _param("moved_by", tags.c.updated_by),
    }
    if not expects_target:
        values["created_at"] = now
    return tags.update().where(*conditions).values(**values)


@functools.cache
def _swap_query(expects_target: bool, expects_revision: bool) -> ReturningUpdate[Any]:
    """``TagRepository.swap``'s statement: the compare-and-swap, returning the tag's row."""
    return _compare_and_swap(expects_target, expects_revision).returning(*tags.c)


_MOVE_LINE = _compare_and_swap(True, True, line=True).returning(tags.c.revision)
_APPEND_MOVES = insert(moves).values(id=tag_move_id_seq.next_value())
"""History rows (run for many), their ids drawn in row order."""


@functools.cache
def _swap_with_move_query(expects_target: bool, expects_revision: bool) -> ReturningInsert[Any]:
    """``TagRepository._swap_with_move``'s statement for each shape of swap (whether it
    expects a target, and a revision), built once (building it costs more than running
    it): ``WITH moved AS (UPDATE tags ... RETURNING revision) INSERT INTO tag_moves
    SELECT ... FROM moved RETURNING revision``."""

    moved = _compare_and_swap(expects_target, expects_revision).returning(tags.c.revision)
    line = moved.cte("moved")
    row = select(
        tag_move_id_seq.next_value(),
        _param("tag", moves.c.tag_name),
        _param("expected_target_id", moves.c.from_target_id) if expects_target else null(),
        _param("new_target_id", moves.c.to_target_id),
        line.c.revision,
        _param("now", moves.c.moved_at),
        _param("moved_by", moves.c.moved_by),
        _param("reason", moves.c.reason),
        _param("run_id", moves.c.run_id),
    )
    columns = ["id", "tag_name", "from_target_id", "to_target_id", "revision", "moved_at"]
    history = insert(moves).from_select([*columns, "moved_by", "reason", "run_id"], row)
    return history.returning(moves.c.revision)
