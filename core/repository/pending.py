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
staged). Applying them again changes nothing, so a fold cut short by a crash is simply
done again.
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
    journal and the pending writes."""
    ops = list(pending.ops())
    if ops:
        with Session(bind=connection) as session:
            _apply(session, ops)
            session.commit()
    if ops or not journal.is_empty():
        journal.clear()
    pending.clear()


def _apply(session: Session, ops: list[Op]) -> None:
    """Tables in the order their references need, a table's rows in one statement.

    A fold is one transaction, so a journal is in the file whole or not at all: when its
    first move is there already (a crash came between the fold and the emptying of the
    journal), nothing is applied again.
    """
    inserts: dict[str, list[Row]] = {name: [] for name in KEYS}
    upserts: dict[str, list[Row]] = {name: [] for name in KEYS}
    swaps: dict[str, tuple[int, Row]] = {}
    for op in ops:
        if op[0] == "swap":
            first_expected = swaps.get(op[1]["name"], (op[2], op[1]))[0]
            swaps[op[1]["name"]] = (first_expected, op[1])
        else:
            (inserts if op[0] == "insert" else upserts)[op[1]].extend(op[2])
    if swaps and _applied(session, *next(iter(swaps.items()))):
        return
    _write(session, "cas_blobs", inserts["cas_blobs"])
    _insert_one_by_one(session, "artifacts", inserts["artifacts"])
    _write(session, "blob_refs", inserts["blob_refs"])
    for name, (expected, row) in swaps.items():
        _swap(session, name, expected, row)
    _write(session, "tag_moves", _numbered(session, inserts["tag_moves"]))
    _write(session, "run_io", upserts["run_io"], overwrite=True)


def _applied(session: Session, name: str, move: tuple[int, Row]) -> bool:
    """Whether the journal's moves of tag ``name`` (from revision ``move[0]`` to the
    row ``move[1]``) are in the file already."""
    tags = TABLES["tags"]
    revision = session.scalar(select(tags.c.revision).where(tags.c.name == name))
    if revision not in (move[0], move[1]["revision"]):
        raise IntegrityError(
            f"the journal moves tag {name!r} from revision {move[0]}, but the catalog has it "
            f"at revision {revision}"
        )
    return bool(revision == move[1]["revision"])


def _write(session: Session, table: str, rows: list[Row], *, overwrite: bool = False) -> None:
    """Insert ``rows`` in one statement, each column sent as one list: a row whose key is
    present is skipped (of rows with one key, the first is inserted), or with
    ``overwrite`` it is updated (the last row of a key wins)."""
    key = KEYS[table]
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
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in key)
    statement = (
        f"INSERT INTO {table} ({', '.join(names)}) SELECT {columns} "
        f"ON CONFLICT ({', '.join(key)}) "
        + (f"DO UPDATE SET {updates}" if overwrite else "DO NOTHING")
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
