"""Folding the journal: its commit records applied to the DuckDB file in one transaction.

``fold`` applies the records of this tenure a statement per table (``apply_records``) and
marks the last one applied (``JournalMark``) in the same transaction, then empties the
journal. ``recover``, when a tenure starts, folds what a journal holds after the mark
(a writer died holding the file, or could not empty the journal after a fold): each line
is read back exactly (``record_format``) and checked against the file, as the records
before it leave it, before any is applied; a journal that does not fit is refused, by
line and reason, with nothing of it applied.
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import Connection

from core.errors import IntegrityError, StorageUnavailableError
from core.storage.commit_record import CommitRecord
from core.storage.duckdb.journal import Journal
from core.storage.duckdb.record_format import RecordError, decode
from core.storage.duckdb.write_behind import JournalEntry, WriteBehind
from core.storage.models import (
    ArtifactRow,
    BlobRefRow,
    CasBlob,
    JournalMark,
    RunIORow,
    RunRow,
    TagMoveRow,
    TagRow,
    tag_move_id_seq,
)
from core.storage.skip_list import SkipNode, skip_nodes

Row = dict[str, Any]
MARK = "journal"
"""The ``JournalMark`` row of a catalog's journal."""
FOLD_AT = 256
"""Journaled records after which the process folds without waiting for a reader."""


class Misfit(Exception):
    """A journal line that the catalog cannot take; the message says which and why."""


def fold(connection: Connection, behind: WriteBehind, journal: Journal) -> None:
    """Apply every journaled record to the file in one transaction, then forget them and
    empty the journal."""
    apply_records(connection, behind.entries())
    behind.clear()
    journal.clear()


def recover(connection: Connection, behind: WriteBehind, journal: Journal) -> None:
    """A tenure starts: fold the records of ``journal`` that are not in the file yet.

    A journal that does not fit (another catalog's, a line removed, duplicated or out of
    order, of another format) is ``StorageUnavailableError`` naming the journal, the line
    and what to do, and nothing of it is applied."""
    lines = journal.records()
    if not lines:
        behind.clear()
        if not journal.is_empty():  # a line cut short
            journal.clear()
        return
    assert not connection.in_transaction(), "a fold must own its transaction"
    try:
        entries = _entries(lines)
        with connection.begin():  # the checks and the fold: one transaction
            if not sa.inspect(connection).has_table(TagMoveRow.__tablename__):
                raise Misfit("the catalog has no tables yet")
            start = _after_mark(connection, entries)
            _Fit.read(connection, entries[start:]).take(entries, start)
            _apply_and_mark(connection, entries[start:], skips=_has_skip_pointers(connection))
    except (Misfit, IntegrityError, sa.exc.SQLAlchemyError) as exc:
        behind.clear()
        raise _refusal(journal, len(lines), exc) from exc
    behind.clear()
    journal.clear()


def _entries(lines: list[object]) -> list[JournalEntry]:
    """Each line's record, read back exactly; a line of another form, or one that
    repeats an earlier line's record, is a ``Misfit``."""
    entries: list[JournalEntry] = []
    seen: dict[uuid.UUID, int] = {}
    for number, line in enumerate(lines, 1):
        entry = _decoded(number, line)
        if entry[0] in seen:
            raise Misfit(f"line {number} repeats the record of line {seen[entry[0]]}")
        seen[entry[0]] = number
        entries.append(entry)
    return entries


def _decoded(number: int, line: object) -> JournalEntry:
    try:
        return decode(line)
    except RecordError as exc:
        raise Misfit(f"line {number} {exc}") from None


def _has_skip_pointers(connection: Connection) -> bool:
    """Whether the file's artifacts have skip pointers: a catalog an older release left
    (with its journal) gets them from its migration, for every artifact folded before it."""
    found = connection.execute(
        text(
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_name = :table AND column_name = 'skip_id'"
        ),
        {"table": ArtifactRow.__tablename__},
    )
    return bool(found.scalar())


def _after_mark(connection: Connection, entries: list[JournalEntry]) -> int:
    """How many of ``entries`` a fold applied already: those up to the marked one."""
    if not sa.inspect(connection).has_table(JournalMark.__tablename__):
        return 0
    marks = JournalMark.__table__
    marked = connection.scalar(select(marks.c.record_id).where(marks.c.name == MARK))
    ids = [record_id for record_id, _ in entries]
    return ids.index(marked) + 1 if marked in ids else 0


def _refusal(journal: Journal, count: int, exc: Exception) -> StorageUnavailableError:
    where = str(journal.path)
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, Misfit):
        return StorageUnavailableError(
            f"the journal {where!r} does not fit this catalog: {reason}; nothing of it was "
            f"applied: move it aside to open the catalog without its {count} records"
        )
    return StorageUnavailableError(
        f"cannot apply the journal {where!r} to this catalog ({reason}); nothing of it was "
        f"applied: if it is another catalog's, move it aside to open this one without its "
        f"{count} records"
    )


def apply_records(connection: Connection, entries: Sequence[JournalEntry]) -> None:
    """Apply ``entries`` and mark the last in one transaction: all of them, or none."""
    if not entries:
        return
    # a transaction begun on the connection by someone else would not be ours to commit
    assert not connection.in_transaction(), "a fold must own its transaction"
    with connection.begin():
        _apply_and_mark(connection, entries)


def _apply_and_mark(
    connection: Connection, entries: Sequence[JournalEntry], *, skips: bool = True
) -> None:
    if entries:
        _apply(connection, [record for _, record in entries], skips=skips)
        _mark(connection, entries[-1][0])


def _apply(connection: Connection, records: list[CommitRecord], *, skips: bool) -> None:
    """Tables in the order their references need, a table's rows in one statement;
    ``skips``: with the new versions' skip pointers."""
    blobs: list[Row] = []
    versions: list[Row] = []
    refs: list[Row] = []
    moves: list[Row] = []
    tags: dict[str, tuple[int, Row]] = {}
    heads: dict[str, tuple[int, Row]] = {}
    values: list[Row] = []
    for record in records:
        blobs += [
            {
                "cas_id": b.cas_id,
                "size": b.size,
                "media_type": b.media_type,
                "created_at": record.at,
            }
            for b in record.blobs
        ]
        if (version := record.version) is not None:
            versions.append(version.row(record.at))
            refs += [{"artifact_id": version.id, "cas_id": cas_id} for cas_id in version.refs]
        if (swap := record.swap) is not None:
            first_expected = tags.get(swap.tag, (swap.expected_revision, {}))[0]
            tags[swap.tag] = (first_expected, _tag_values(record))
            moves.append(_move_row(record))
        if (staged := record.staged) is not None:
            first_expected = heads.get(staged.run_id, (staged.expected_revision, {}))[0]
            moved = {"head_id": staged.to_target_id, "head_revision": staged.expected_revision + 1}
            heads[staged.run_id] = (first_expected, moved)
        values += [_run_value_row(record, index) for index in range(len(record.run_values))]
    _insert(connection, CasBlob.__table__, blobs, on_conflict="DO NOTHING")
    _insert_in_order(
        connection, ArtifactRow.__table__, _with_skips(connection, versions) if skips else versions
    )
    _insert(connection, BlobRefRow.__table__, refs)
    for name, (expected, row) in tags.items():
        _swap(connection, name, expected, row)
    for run_id, (expected, row) in heads.items():
        _move_head(connection, run_id, expected, row)
    _insert(connection, TagMoveRow.__table__, _numbered(connection, moves))
    _insert(connection, RunIORow.__table__, values, on_conflict="DO UPDATE")


def _with_skips(connection: Connection, versions: list[Row]) -> list[Row]:
    """``versions`` (each after its parent) with their first-parent skip pointers."""
    artifacts = ArtifactRow.__table__

    def stored(artifact_id: uuid.UUID) -> SkipNode:
        row = connection.execute(
            select(artifacts.c.generation, artifacts.c.skip_id).where(artifacts.c.id == artifact_id)
        ).one()
        return SkipNode(row.generation, row.skip_id)

    nodes = skip_nodes([(row["id"], row["parent_id"]) for row in versions], stored)
    return [
        {**row, "generation": nodes[row["id"]].generation, "skip_id": nodes[row["id"]].skip_id}
        for row in versions
    ]


def _tag_values(record: CommitRecord) -> Row:
    swap = record.swap
    assert swap is not None
    return {
        "target_id": swap.to_target_id,
        "target_kind": swap.target_kind.value,
        "revision": swap.expected_revision + 1,
        "updated_at": record.at,
        "updated_by": swap.moved_by,
    }


def _move_row(record: CommitRecord) -> Row:
    swap = record.swap
    assert swap is not None
    return {
        "tag_name": swap.tag,
        "from_target_id": swap.from_target_id,
        "to_target_id": swap.to_target_id,
        "revision": swap.expected_revision + 1,
        "moved_at": record.at,
        "moved_by": swap.moved_by,
        "reason": swap.reason,
        "run_id": swap.run_id,
    }


def _run_value_row(record: CommitRecord, index: int) -> Row:
    value = record.run_values[index]
    return {
        "run_id": record.run_id,
        "direction": value.direction.value,
        "node": value.node,
        "partition_key": value.partition_key or "",
        "cas_id": value.cas_id,
        "media_type": value.media_type,
        "size": value.size,
        "recorded_at": record.at,
    }


def _key(table: Table) -> tuple[str, ...]:
    return tuple(column.name for column in table.primary_key)


def _insert(connection: Connection, table: Table, rows: list[Row], on_conflict: str = "") -> None:
    """Insert ``rows`` in one statement, each column sent as one list. A row whose key is
    present is an error, or with ``on_conflict="DO NOTHING"`` skipped (of rows with one
    key, the first is inserted), or with ``"DO UPDATE"`` updated (the last row wins)."""
    key = _key(table)
    overwrite = on_conflict == "DO UPDATE"
    by_key: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        if overwrite or tuple(row[name] for name in key) not in by_key:
            by_key[tuple(row[name] for name in key)] = row
    if not by_key:
        return
    names = list(next(iter(by_key.values())))
    types = {name: table.c[name].type.compile(dialect=connection.dialect) for name in names}
    columns = ", ".join(f"unnest(CAST(:{name} AS {types[name]}[]))" for name in names)
    statement = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {columns}"
    if on_conflict:
        statement += f" ON CONFLICT ({', '.join(key)}) {on_conflict}"
    if overwrite:
        statement += " SET " + ", ".join(
            f"{name} = excluded.{name}" for name in names if name not in key
        )
    lists = {name: [_sent(row[name]) for row in by_key.values()] for name in names}
    connection.execute(text(statement), lists)


def _sent(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _insert_in_order(connection: Connection, table: Table, rows: list[Row]) -> None:
    """Insert ``rows`` in order, a statement each (the parent of an artifact may be the
    row before it, and DuckDB checks a reference before a statement's rows are in)."""
    if rows:
        names = list(rows[0])
        statement = (
            f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        )
        connection.exec_driver_sql(statement, [tuple(row[name] for name in names) for row in rows])


def _swap(connection: Connection, name: str, expected_revision: int, values: Row) -> None:
    tags = TagRow.__table__
    moved = connection.execute(
        tags.update()
        .where(tags.c.name == name, tags.c.revision == expected_revision)
        .values(**values)
        .returning(tags.c.name)
    ).first()
    if moved is None:
        raise IntegrityError(f"the journal's move of tag {name!r} does not apply")


def _move_head(connection: Connection, run_id: str, expected_revision: int, values: Row) -> None:
    runs = RunRow.__table__
    moved = connection.execute(
        runs.update()
        .where(runs.c.run_id == run_id, runs.c.head_revision == expected_revision)
        .values(**values)
        .returning(runs.c.run_id)
    ).first()
    if moved is None:
        raise IntegrityError(f"the journal's move of run {run_id!r}'s staged head does not apply")


def _numbered(connection: Connection, moves: list[Row]) -> list[Row]:
    """Moves with ids from the sequence, in the order they were journaled."""
    if not moves:
        return []
    ids = sorted(
        connection.scalars(select(tag_move_id_seq.next_value()).select_from(func.range(len(moves))))
    )
    return [{"id": move_id, **move} for move, move_id in zip(moves, ids, strict=True)]


def _mark(connection: Connection, record_id: uuid.UUID) -> None:
    marks = JournalMark.__table__
    _insert(
        connection,
        marks,
        [
            {
                "name": MARK,
                "record_id": record_id,
                "folded_at": datetime.now(UTC).replace(tzinfo=None),
            }
        ],
        on_conflict="DO UPDATE",
    )


class _Fit:
    """What the file holds of what some records refer to, then what applying them in
    order adds: ``take`` refuses (``Misfit``) the first record that does not fit."""

    def __init__(self) -> None:
        self.artifacts: set[uuid.UUID] = set()
        self.versions: set[str] = set()
        self.blobs: set[str] = set()
        self.tags: dict[str, tuple[uuid.UUID | None, int]] = {}
        self.staged: dict[str, tuple[uuid.UUID | None, int]] = {}
        self.runs: set[str] = set()

    @classmethod
    def read(cls, connection: Connection, entries: list[JournalEntry]) -> "_Fit":
        """The file's rows among those ``entries`` refer to or add (a few statements)."""
        fit = cls()
        ids: set[uuid.UUID] = set()
        versions: set[str] = set()
        blob_ids: set[str] = set()
        names: set[str] = set()
        run_ids: set[str] = set()
        for _, record in entries:
            blob_ids.update(b.cas_id for b in record.blobs)
            blob_ids.update(value.cas_id for value in record.run_values)
            if (version := record.version) is not None:
                parents = (version.id, version.parent_id, version.merged_id)
                ids.update(i for i in parents if i is not None)
                versions.add(version.version_hash)
                blob_ids.update((version.cas_id, *version.refs))
            if (swap := record.swap) is not None:
                names.add(swap.tag)
                ids.update(i for i in (swap.from_target_id, swap.to_target_id) if i is not None)
            if record.run_id is not None:
                run_ids.add(record.run_id)
            if (staged := record.staged) is not None:
                run_ids.add(staged.run_id)
                ids.update(i for i in (staged.from_target_id, staged.to_target_id) if i)
        artifacts, blobs, tags = ArtifactRow.__table__, CasBlob.__table__, TagRow.__table__
        fit.artifacts.update(
            connection.scalars(select(artifacts.c.id).where(artifacts.c.id.in_(ids)))
        )
        fit.versions.update(
            connection.scalars(
                select(artifacts.c.version_hash).where(artifacts.c.version_hash.in_(versions))
            )
        )
        fit.blobs.update(
            connection.scalars(select(blobs.c.cas_id).where(blobs.c.cas_id.in_(blob_ids)))
        )
        rows = connection.execute(
            select(tags.c.name, tags.c.target_id, tags.c.revision).where(tags.c.name.in_(names))
        )
        fit.tags.update((name, (target, revision)) for name, target, revision in rows)
        runs = RunRow.__table__
        heads = connection.execute(
            select(runs.c.run_id, runs.c.head_id, runs.c.base_id, runs.c.head_revision).where(
                runs.c.run_id.in_(run_ids)
            )
        )
        for run, head, base, moves in heads:
            fit.runs.add(run)
            fit.staged[run] = (head or base, moves)
        return fit

    def take(self, entries: list[JournalEntry], start: int) -> None:
        """Apply ``entries[start:]`` (lines ``start + 1`` on) to what is known, in order."""
        for number, (_, record) in enumerate(entries[start:], start + 1):
            self.blobs.update(b.cas_id for b in record.blobs)
            if record.version is not None:
                self._version(number, record)
            if record.swap is not None:
                self._swap(number, record)
            if record.staged is not None:
                self._stage(number, record)
            if record.run_values and record.run_id not in self.runs:
                raise Misfit(
                    f"line {number} records values of run {record.run_id!r}, which the "
                    "catalog does not have (another catalog's journal)"
                )
            for value in record.run_values:
                self._need_blob(number, value.cas_id, f"a value of run {record.run_id!r}")

    def _version(self, number: int, record: CommitRecord) -> None:
        version = record.version
        assert version is not None
        if version.version_hash in self.versions or version.id in self.artifacts:
            raise Misfit(
                f"line {number} adds version {version.version_hash}, which the catalog has "
                "already (a line duplicated, or another catalog's journal)"
            )
        if version.parent_id is not None:
            self._need_artifact(number, version.parent_id, "the parent of a new version")
        if version.merged_id is not None:
            self._need_artifact(number, version.merged_id, "the version a merge merged")
        self._need_blob(number, version.cas_id, "the content of a new version")
        for cas_id in version.refs:
            self._need_blob(number, cas_id, "a blob a new version names")
        self.artifacts.add(version.id)
        self.versions.add(version.version_hash)

    def _swap(self, number: int, record: CommitRecord) -> None:
        swap = record.swap
        assert swap is not None
        if swap.tag not in self.tags:
            raise Misfit(f"line {number} moves tag {swap.tag!r}, which the catalog does not have")
        target, revision = self.tags[swap.tag]
        if (target, revision) != (swap.from_target_id, swap.expected_revision):
            raise Misfit(
                f"line {number} moves tag {swap.tag!r} from revision {swap.expected_revision}, "
                f"but the catalog has it at revision {revision} (a line missing, duplicated "
                "or out of order, or another catalog's journal)"
            )
        self._need_artifact(number, swap.to_target_id, f"the new target of tag {swap.tag!r}")
        self.tags[swap.tag] = (swap.to_target_id, revision + 1)

    def _stage(self, number: int, record: CommitRecord) -> None:
        staged = record.staged
        assert staged is not None
        if staged.run_id not in self.staged:
            raise Misfit(
                f"line {number} moves the staged head of run {staged.run_id!r}, which the "
                "catalog does not have"
            )
        target, revision = self.staged[staged.run_id]
        if (target, revision) != (staged.from_target_id, staged.expected_revision):
            raise Misfit(
                f"line {number} moves run {staged.run_id!r}'s staged head from its move "
                f"{staged.expected_revision}, but the catalog has it after {revision} moves "
                "(a line missing, duplicated or out of order, or another catalog's journal)"
            )
        self._need_artifact(number, staged.to_target_id, f"run {staged.run_id!r}'s staged head")
        self.staged[staged.run_id] = (staged.to_target_id, revision + 1)

    def _need_artifact(self, number: int, artifact_id: uuid.UUID, what: str) -> None:
        if artifact_id not in self.artifacts:
            raise Misfit(
                f"line {number} refers to version {artifact_id} ({what}), which neither the "
                "catalog nor an earlier line has"
            )

    def _need_blob(self, number: int, cas_id: str, what: str) -> None:
        if cas_id not in self.blobs:
            raise Misfit(
                f"line {number} refers to blob {cas_id} ({what}), which neither the catalog "
                "nor an earlier line has"
            )
