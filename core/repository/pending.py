"""Writes journaled by deferred transactions and not yet in the DuckDB file.

While one process holds the DuckDB file (``core.duckdb_lease``) nobody else reads it, so
the writes of an output commit need not be statements at once: a deferred transaction
stages them here (``PendingWrites``), commits them as one journal record
(``core.journal``), and ``fold`` applies every pending record to the file in one
transaction, a statement for many rows. Repositories answer the few reads a deferred
transaction makes from the pending writes first, then from the file.

An operation is JSON-able: ``["insert", table, rows]`` (rows whose key is present are
skipped), ``["upsert", table, rows]`` (the last row for a key wins) or
``["swap", tag_row, expected_revision]`` (the tag's compare-and-swap, decided when it was
staged). A fold is one transaction: when a crash (or a failure to empty the journal)
comes after it, the records it applied are a prefix of the journal, which ``recover``
finds by their tag moves and leaves out.
"""

import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Table, Uuid, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.errors import IntegrityError
from core.journal import Journal, Record
from core.models import (
    ArtifactRow,
    BlobRefRow,
    CasBlob,
    RunIORow,
    TagMoveRow,
    TagRow,
    tag_move_id_seq,
)

Row = dict[str, Any]
Op = list[Any]

TABLES: dict[str, Table] = {
    model.__tablename__: model.__table__  # type: ignore[misc]
    for model in (CasBlob, ArtifactRow, BlobRefRow, TagRow, TagMoveRow, RunIORow)
}
KEYS = {
    "cas_blobs": ("cas_id",),
    "artifacts": ("version_hash",),
    "blob_refs": ("artifact_id", "cas_id"),
    "tag_moves": ("tag_name", "revision"),
    "run_io": ("run_id", "direction", "node", "partition_key"),
}
"""The key of each table a deferred transaction writes (what makes a row present)."""
FOLD_AT = 256
"""Journaled transactions after which the process folds without waiting for a reader."""


class PendingWrites:
    """The journaled writes of the process holding the DuckDB file, and those the current
    deferred transaction stages, indexed for the reads deferred transactions make."""

    def __init__(self) -> None:
        self._records: list[Record] = []
        self._staged: Record = []
        self._index = _Index()

    def __len__(self) -> int:
        """How many journaled transactions are pending."""
        return len(self._records)

    def insert(self, table: str, rows: Sequence[Row]) -> None:
        self._stage(["insert", table, list(rows)])

    def upsert(self, table: str, rows: Sequence[Row]) -> None:
        self._stage(["upsert", table, list(rows)])

    def swap(self, tag_row: Row, expected_revision: int) -> None:
        self._stage(["swap", tag_row, expected_revision])

    def artifact(self, artifact_id: uuid.UUID) -> Row | None:
        return self._index.artifacts.get(artifact_id)

    def artifact_with_version(self, version_hash: str) -> Row | None:
        artifact_id = self._index.artifact_ids.get(version_hash)
        return None if artifact_id is None else self._index.artifacts[artifact_id]

    def tag(self, name: str) -> Row | None:
        return self._index.tags.get(name)

    def has_blob(self, cas_id: str) -> bool:
        return cas_id in self._index.blobs

    def commit(self, journal: Journal) -> None:
        """Journal what the transaction staged (durable when this returns)."""
        if self._staged:
            journal.append(self._staged)
            self._records.append(self._staged)
        self._staged = []

    def discard(self) -> None:
        """Forget what the transaction staged."""
        if self._staged:
            self._staged = []
            self._index = _Index.of(self._records)

    def load(self, records: list[Record]) -> None:
        """Take ``records`` read back from a journal as the pending writes."""
        self._records = [[_decoded(op) for op in record] for record in records]
        self._staged = []
        self._index = _Index.of(self._records)

    def ops(self) -> Iterator[Op]:
        return (op for record in self._records for op in record)

    def clear(self) -> None:
        self.load([])

    def _stage(self, op: Op) -> None:
        self._staged.append(op)
        self._index.add(op)


class _Index:
    def __init__(self) -> None:
        self.artifacts: dict[uuid.UUID, Row] = {}
        self.artifact_ids: dict[str, uuid.UUID] = {}
        self.tags: dict[str, Row] = {}
        self.blobs: set[str] = set()

    @classmethod
    def of(cls, records: list[Record]) -> "_Index":
        index = cls()
        for record in records:
            for op in record:
                index.add(op)
        return index

    def add(self, op: Op) -> None:
        if op[0] == "swap":
            self.tags[op[1]["name"]] = op[1]
        elif op[1] == "artifacts":
            for row in op[2]:
                self.artifacts.setdefault(row["id"], row)
                self.artifact_ids.setdefault(row["version_hash"], row["id"])
        elif op[1] == "cas_blobs":
            self.blobs.update(row["cas_id"] for row in op[2])


def fold(connection: Connection, pending: PendingWrites, journal: Journal) -> None:
    """Apply every pending write to the DuckDB file in one transaction, then empty the
    pending writes and the journal."""
    ops = list(pending.ops())
    if ops:
        with Session(bind=connection) as session:
            _apply(session, ops)
            session.commit()
    pending.clear()
    journal.clear()


def recover(connection: Connection, pending: PendingWrites, journal: Journal) -> None:
    """A tenure starts: fold the records of ``journal`` that are not in the file yet (a
    process died holding the file, or could not empty the journal after a fold)."""
    records = journal.records()
    if not records:
        pending.clear()
        if not journal.is_empty():  # a line cut short
            journal.clear()
        return
    try:
        with Session(bind=connection) as session:
            pending.load(records[_applied(session, records) :])
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0]
        raise IntegrityError(
            f"the journal {str(journal.path)!r} does not fit this catalog ({reason}); move "
            f"it aside to open the catalog without its {len(records)} records"
        ) from exc
    fold(connection, pending, journal)


def _applied(session: Session, records: list[Record]) -> int:
    """How many of ``records`` (read back from a journal) a fold applied already: those
    up to the last whose first move is in the tag's history."""
    applied = 0
    for number, record in enumerate(records, 1):
        swap = next((_decoded(op) for op in record if op[0] == "swap"), None)
        if swap is None:
            continue
        row = swap[1]
        moves = TABLES["tag_moves"]
        target = session.scalar(
            select(moves.c.to_target_id).where(
                moves.c.tag_name == row["name"], moves.c.revision == row["revision"]
            )
        )
        if target is None:
            break
        if target != row["target_id"]:
            raise IntegrityError(
                f"record {number} moves tag {row['name']!r} to revision {row['revision']}, "
                "which the catalog has at another version"
            )
        applied = number
    return applied


def _apply(session: Session, ops: list[Op]) -> None:
    """Tables in the order their references need, a table's rows in one statement."""
    inserts: dict[str, list[Row]] = {name: [] for name in KEYS}
    upserts: dict[str, list[Row]] = {name: [] for name in KEYS}
    swaps: dict[str, tuple[int, Row]] = {}
    for op in ops:
        if op[0] == "swap":
            first_expected = swaps.get(op[1]["name"], (op[2], op[1]))[0]
            swaps[op[1]["name"]] = (first_expected, op[1])
        else:
            (inserts if op[0] == "insert" else upserts)[op[1]].extend(op[2])
    _write(session, "cas_blobs", inserts["cas_blobs"], on_conflict="DO NOTHING")
    _insert_one_by_one(session, "artifacts", inserts["artifacts"])
    _write(session, "blob_refs", inserts["blob_refs"])
    for name, (expected, row) in swaps.items():
        _swap(session, name, expected, row)
    _write(session, "tag_moves", _numbered(session, inserts["tag_moves"]))
    _write(session, "run_io", upserts["run_io"], on_conflict="DO UPDATE")


def _write(session: Session, table: str, rows: list[Row], on_conflict: str = "") -> None:
    """Insert ``rows`` in one statement, each column sent as one list. A row whose key is
    present is an error, or with ``on_conflict="DO NOTHING"`` skipped (of rows with one
    key, the first is inserted), or with ``"DO UPDATE"`` updated (the last row wins)."""
    key = KEYS[table]
    overwrite = on_conflict == "DO UPDATE"
    by_key: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        if overwrite or tuple(row[name] for name in key) not in by_key:
            by_key[tuple(row[name] for name in key)] = row
    if not by_key:
        return
    names = list(next(iter(by_key.values())))
    dialect = session.get_bind().dialect
    types = {name: TABLES[table].c[name].type.compile(dialect=dialect) for name in names}
    columns = ", ".join(f"unnest(CAST(:{name} AS {types[name]}[]))" for name in names)
    statement = f"INSERT INTO {table} ({', '.join(names)}) SELECT {columns}"
    if on_conflict:
        statement += f" ON CONFLICT ({', '.join(key)}) {on_conflict}"
    if overwrite:
        statement += " SET " + ", ".join(
            f"{name} = excluded.{name}" for name in names if name not in key
        )
    lists = {name: [_sent(row[name]) for row in by_key.values()] for name in names}
    session.execute(text(statement), lists)


def _sent(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _insert_one_by_one(session: Session, table: str, rows: list[Row]) -> None:
    """Insert ``rows`` in order, a statement each (the parent of an artifact may be the
    row before it, and DuckDB checks a reference before a statement's rows are in)."""
    if rows:
        names = list(rows[0])
        statement = (
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        )
        parameters = [tuple(row[name] for name in names) for row in rows]
        session.connection().exec_driver_sql(statement, parameters)


def _swap(session: Session, name: str, expected_revision: int, row: Row) -> None:
    tags = TABLES["tags"]
    values = {column: value for column, value in row.items() if column != "name"}
    moved = session.execute(
        tags.update()
        .where(tags.c.name == name, tags.c.revision == expected_revision)
        .values(**values)
        .returning(tags.c.name)
    ).first()
    if moved is None:
        raise IntegrityError(f"the journal's move of tag {name!r} does not apply")


def _numbered(session: Session, moves: list[Row]) -> list[Row]:
    """Moves with ids from the sequence, in the order they were journaled."""
    if not moves:
        return []
    ids = sorted(
        session.scalars(select(tag_move_id_seq.next_value()).select_from(func.range(len(moves))))
    )
    return [{**move, "id": move_id} for move, move_id in zip(moves, ids, strict=True)]


def _decoded(op: Op) -> Op:
    """``op`` with the uuids and timestamps that JSON turned into text restored."""
    if op[0] == "swap":
        return ["swap", _row("tags", op[1]), op[2]]
    return [op[0], op[1], [_row(op[1], row) for row in op[2]]]


def _row(table: str, row: Row) -> Row:
    columns = TABLES[table].c
    return {name: _value(columns[name].type, value) for name, value in row.items()}


def _value(column_type: object, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(column_type, Uuid):
        return uuid.UUID(value)
    if isinstance(column_type, DateTime):
        return datetime.fromisoformat(value)
    return value
