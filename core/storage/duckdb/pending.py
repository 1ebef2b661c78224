"""Writes journaled by deferred transactions and not yet in the DuckDB file.

While one process holds the DuckDB file (``core.storage.duckdb.lease``) nobody else reads it, so
the writes of an output commit need not be statements at once: a deferred transaction
stages them here (``PendingWrites``), commits them as one journal record
(``core.storage.duckdb.journal``), and ``fold`` applies every pending record to the file in one
transaction, a statement for many rows. Repositories answer the few reads a deferred
transaction makes from the pending writes first, then from the file.

An operation is JSON-able: ``["insert", table, rows]`` (rows whose key is present are
skipped), ``["upsert", table, rows]`` (the last row for a key wins) or
``["swap", tag_row, expected_revision]`` (the tag's compare-and-swap, decided when it was
staged). A fold is one transaction: when a crash (or a failure to empty the journal)
comes after it, the records it applied are a prefix of the journal, which ``recover``
finds by their tag moves and leaves out. ``recover`` checks every record before it
applies any: each write of a known form, and each fitting the file as the records before
it leave it (the tag at the revision the move expects, every version and blob referred
to present, nothing added twice).
"""

import reprlib
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, Integer, Table, Uuid, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from core.domain import ArtifactKind, Direction
from core.errors import IntegrityError, StorageUnavailableError
from core.identifiers import CAS_ID_PATTERN
from core.storage.duckdb.journal import Journal, Record
from core.storage.models import (
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
    model.__tablename__: model.__table__
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
        """Take ``records`` read back from a journal (and checked) as the pending writes."""
        self._records = list(records)
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
    _commit(connection, list(pending.ops()))
    pending.clear()
    journal.clear()


def recover(connection: Connection, pending: PendingWrites, journal: Journal) -> None:
    """A tenure starts: fold the records of ``journal`` that are not in the file yet (a
    process died holding the file, or could not empty the journal after a fold).

    Every record is checked first, against the journal's form and against the file: a
    journal that does not fit (another catalog's, a record removed, duplicated or out of
    order, an unknown write) is ``StorageUnavailableError`` naming the journal, the line
    and what to do, and nothing of it is applied."""
    records = journal.records()
    if not records:
        pending.clear()
        if not journal.is_empty():  # a line cut short
            journal.clear()
        return
    try:
        with Session(bind=connection) as session:
            checked = [_checked(number, record) for number, record in enumerate(records, 1)]
            _in_order(checked)
            if not sa.inspect(session.connection()).has_table("tag_moves"):
                raise Misfit("the catalog has no tables yet")
            start = _applied(session, checked)
            _Fit.read(session, checked[start:]).take(checked, start)
        pending.load(checked[start:])
        _commit(connection, list(pending.ops()))
    except (
        Misfit,
        IntegrityError,
        sa.exc.SQLAlchemyError,
        LookupError,
        TypeError,
        ValueError,
    ) as exc:
        pending.clear()
        raise _refusal(journal, len(records), exc) from exc
    pending.clear()
    journal.clear()


class Misfit(Exception):
    """A journal record that the catalog cannot take; the message says which and why."""


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


def _commit(connection: Connection, ops: list[Op]) -> None:
    """Apply ``ops`` in one transaction: all of them, or (on any failure) none."""
    if not ops:
        return
    # a session joining a transaction begun on the connection would not commit it
    assert not connection.in_transaction(), "a fold must own its transaction"
    with Session(bind=connection) as session:
        try:
            _apply(session, ops)
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _applied(session: Session, records: list[Record]) -> int:
    """How many of ``records`` (checked) a fold applied already: those up to the last
    whose first move is in the tag's history."""
    applied = 0
    moves = TABLES["tag_moves"]
    for number, record in enumerate(records, 1):
        swap = next((op for op in record if op[0] == "swap"), None)
        if swap is None:
            continue
        row = swap[1]
        found = session.execute(
            select(moves.c.to_target_id).where(
                moves.c.tag_name == row["name"], moves.c.revision == row["revision"]
            )
        ).first()
        if found is None:
            break
        if found[0] != row["target_id"]:
            raise Misfit(
                f"line {number} moves tag {row['name']!r} to revision {row['revision']}, "
                "which the catalog has at another version"
            )
        applied = number
    return applied


def _in_order(records: list[Record]) -> None:
    """Each tag's moves in the journal go forward: a record duplicated or out of order
    moves a tag from a revision it has left already."""
    reached: dict[str, tuple[int, int]] = {}
    for number, record in enumerate(records, 1):
        for op in record:
            if op[0] != "swap":
                continue
            name, expected = op[1]["name"], op[2]
            revision, line = reached.get(name, (expected, 0))
            if expected < revision:
                raise Misfit(
                    f"line {number} moves tag {name!r} from revision {expected}, but line "
                    f"{line} moved it to revision {revision} already (a record duplicated or "
                    "out of order)"
                )
            reached[name] = (op[1]["revision"], number)


class _Fit:
    """What the file holds of what some journal records refer to, then what applying them
    in order adds: ``take`` refuses (``Misfit``) the first write that does not fit."""

    def __init__(self) -> None:
        self.artifacts: set[uuid.UUID] = set()
        self.versions: set[str] = set()
        self.blobs: set[str] = set()
        self.refs: set[tuple[uuid.UUID, str]] = set()
        self.tags: dict[str, int] = {}
        self.moves: set[tuple[str, int]] = set()

    @classmethod
    def read(cls, session: Session, records: list[Record]) -> "_Fit":
        """The file's rows among those ``records`` refer to or add (a few statements)."""
        fit, wanted = cls(), _Wanted.of(records)
        artifacts, blobs, tags, moves, refs = (
            TABLES[name] for name in ("artifacts", "cas_blobs", "tags", "tag_moves", "blob_refs")
        )
        ids, versions = list(wanted.artifacts), list(wanted.versions)
        fit.artifacts.update(session.scalars(select(artifacts.c.id).where(artifacts.c.id.in_(ids))))
        fit.versions.update(
            session.scalars(
                select(artifacts.c.version_hash).where(artifacts.c.version_hash.in_(versions))
            )
        )
        fit.blobs.update(
            session.scalars(select(blobs.c.cas_id).where(blobs.c.cas_id.in_(list(wanted.blobs))))
        )
        rows = session.execute(
            select(tags.c.name, tags.c.revision).where(tags.c.name.in_(list(wanted.tags)))
        )
        fit.tags.update((name, revision) for name, revision in rows)
        for name, revisions in wanted.moves.items():
            fit.moves.update(
                (name, revision)
                for revision in session.scalars(
                    select(moves.c.revision).where(
                        moves.c.tag_name == name, moves.c.revision.in_(list(revisions))
                    )
                )
            )
        rows = session.execute(
            select(refs.c.artifact_id, refs.c.cas_id).where(
                refs.c.artifact_id.in_(list(wanted.ref_artifacts))
            )
        )
        fit.refs.update((artifact_id, cas_id) for artifact_id, cas_id in rows)
        return fit

    def take(self, records: list[Record], start: int) -> None:
        """Apply ``records[start:]`` (lines ``start + 1`` on) to what is known, in the
        order a fold writes them."""
        for number, record in enumerate(records[start:], start + 1):
            for op in sorted(record, key=_phase):
                if op[0] == "swap":
                    self._swap(number, op[1], op[2])
                else:
                    for row in op[2]:
                        getattr(self, f"_{op[1]}")(number, row)

    def _cas_blobs(self, number: int, row: Row) -> None:
        self.blobs.add(row["cas_id"])

    def _artifacts(self, number: int, row: Row) -> None:
        if row["version_hash"] in self.versions or row["id"] in self.artifacts:
            raise Misfit(
                f"line {number} adds version {row['version_hash']}, which the catalog has "
                "already (a record duplicated, or another catalog's journal)"
            )
        if row["parent_id"] is not None:
            self._need_artifact(number, row["parent_id"], "the parent of a new version")
        self._need_blob(number, row["cas_id"], "the content of a new version")
        self.artifacts.add(row["id"])
        self.versions.add(row["version_hash"])

    def _blob_refs(self, number: int, row: Row) -> None:
        key = (row["artifact_id"], row["cas_id"])
        if key in self.refs:
            raise Misfit(f"line {number} records again that version {key[0]} names {key[1]}")
        self._need_artifact(number, row["artifact_id"], "a version naming a blob")
        self._need_blob(number, row["cas_id"], "a blob a version names")
        self.refs.add(key)

    def _swap(self, number: int, row: Row, expected: int) -> None:
        name = row["name"]
        if name not in self.tags:
            raise Misfit(f"line {number} moves tag {name!r}, which the catalog does not have")
        if self.tags[name] != expected:
            raise Misfit(
                f"line {number} moves tag {name!r} from revision {expected}, but the catalog "
                f"has it at revision {self.tags[name]} (a record missing, duplicated or out "
                "of order, or another catalog's journal)"
            )
        if row["target_id"] is not None:
            self._need_artifact(number, row["target_id"], f"the new target of tag {name!r}")
        self.tags[name] = row["revision"]

    def _tag_moves(self, number: int, row: Row) -> None:
        key = (row["tag_name"], row["revision"])
        if key in self.moves:
            raise Misfit(
                f"line {number} records move {key[1]} of tag {key[0]!r}, which the catalog "
                "has already"
            )
        for column in ("from_target_id", "to_target_id"):
            if row[column] is not None:
                self._need_artifact(number, row[column], f"a version in tag {key[0]!r}'s history")
        self.moves.add(key)

    def _run_io(self, number: int, row: Row) -> None:
        self._need_blob(number, row["cas_id"], f"a value of run {row['run_id']!r}")

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


class _Wanted:
    """The keys some journal records refer to or add, by table."""

    def __init__(self) -> None:
        self.artifacts: set[uuid.UUID] = set()
        self.versions: set[str] = set()
        self.blobs: set[str] = set()
        self.tags: set[str] = set()
        self.moves: dict[str, set[int]] = {}
        self.ref_artifacts: set[uuid.UUID] = set()

    @classmethod
    def of(cls, records: list[Record]) -> "_Wanted":
        wanted = cls()
        for record in records:
            for op in record:
                if op[0] == "swap":
                    wanted.tags.add(op[1]["name"])
                    wanted.artifacts.add(op[1]["target_id"])
                    continue
                for row in op[2]:
                    wanted.add(op[1], row)
        wanted.artifacts.discard(None)
        return wanted

    def add(self, table: str, row: Row) -> None:
        if table == "artifacts":
            self.artifacts.update((row["id"], row["parent_id"]))
            self.versions.add(row["version_hash"])
            self.blobs.add(row["cas_id"])
        elif table == "blob_refs":
            self.artifacts.add(row["artifact_id"])
            self.ref_artifacts.add(row["artifact_id"])
            self.blobs.add(row["cas_id"])
        elif table == "tag_moves":
            self.artifacts.update((row["from_target_id"], row["to_target_id"]))
            self.moves.setdefault(row["tag_name"], set()).add(row["revision"])
        elif table == "run_io":
            self.blobs.add(row["cas_id"])


PHASES = ("cas_blobs", "artifacts", "blob_refs", "swap", "tag_moves", "run_io")
"""The order in which a fold writes (``_apply``)."""


def _phase(op: Op) -> int:
    return PHASES.index("swap" if op[0] == "swap" else op[1])


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


WRITES = {"insert": ("cas_blobs", "artifacts", "blob_refs", "tag_moves"), "upsert": ("run_io",)}
"""The writes a deferred transaction stages besides ``swap``: the operation and its tables."""
CHOICES = {
    "kind": frozenset(ArtifactKind),
    "target_kind": frozenset(ArtifactKind),
    "direction": frozenset(Direction),
}
"""Columns whose values are one of a few words."""
CONTENT_IDS = frozenset({"cas_id", "version_hash"})
"""Columns whose values are ``sha256:<hex>`` content ids."""


def _checked(number: int, record: Any) -> Record:
    """The record on journal line ``number`` as ``PendingWrites`` holds it (the uuids and
    times that JSON turned into text restored), once every write in it has the form a
    deferred transaction stages; ``Misfit`` naming the line otherwise."""
    if not isinstance(record, list) or not record:
        raise Misfit(f"line {number} is not a list of writes")
    return [_checked_op(number, op) for op in record]


def _checked_op(number: int, op: Any) -> Op:
    if not isinstance(op, list) or len(op) != 3 or not isinstance(op[0], str):
        raise Misfit(f"line {number} holds a write of no known form: {reprlib.repr(op)}")
    kind, subject, argument = op
    if kind == "swap":
        row = _checked_row(number, "tags", subject)
        if type(argument) is not int or row["revision"] != argument + 1:
            raise Misfit(
                f"line {number} moves tag {row['name']!r} to revision {row['revision']} from "
                f"revision {reprlib.repr(argument)}"
            )
        return ["swap", row, argument]
    if kind not in WRITES or subject not in WRITES[kind]:
        raise Misfit(f"line {number} holds an unknown write {kind!r} of {reprlib.repr(subject)}")
    if not isinstance(argument, list) or not argument:
        raise Misfit(f"line {number} holds a {kind} of {subject} with no list of rows")
    return [kind, subject, [_checked_row(number, subject, row) for row in argument]]


def _checked_row(number: int, table: str, row: Any) -> Row:
    columns = TABLES[table].c
    expected = {column.name for column in columns} - ({"id"} if table == "tag_moves" else set())
    if not isinstance(row, dict) or set(row) != expected:
        found = sorted(row) if isinstance(row, dict) else reprlib.repr(row)
        raise Misfit(
            f"line {number} holds a row of {table} with the columns {found}, not {sorted(expected)}"
        )
    try:
        return {name: _value(columns[name], value) for name, value in row.items()}
    except (TypeError, ValueError) as exc:
        raise Misfit(f"line {number} holds a row of {table} whose {exc}") from None


def _value(column: Column[Any], value: Any) -> Any:
    """``value`` of ``column`` as read back from JSON, restored to its Python type."""
    name, column_type = column.name, column.type
    if value is None:
        if column.nullable:
            return None
        raise ValueError(f"{name} is missing")
    wanted: type[Any] = str
    if isinstance(column_type, Integer):
        wanted = int
    if type(value) is not wanted:
        raise TypeError(f"{name} is {reprlib.repr(value)}, not {wanted.__name__}")
    try:
        if isinstance(column_type, Uuid):
            return uuid.UUID(value)
        if isinstance(column_type, DateTime):
            return datetime.fromisoformat(value)
    except ValueError:
        kind = "a uuid" if isinstance(column_type, Uuid) else "a time"
        raise ValueError(f"{name} is {reprlib.repr(value)}, not {kind}") from None
    if name in CONTENT_IDS and CAS_ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{name} is {reprlib.repr(value)}, not a sha256: content id")
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"{name} is {reprlib.repr(value)}, not one of {sorted(CHOICES[name])}")
    return value
