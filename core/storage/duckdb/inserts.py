"""Insert-if-absent and upsert, written the way each backend runs them fastest.

Postgres gets ``INSERT ... ON CONFLICT``, which stays correct with many concurrent
writers. On DuckDB a row written with ``ON CONFLICT`` costs about 1.5 times as much as one
guarded by ``NOT EXISTS`` (``bench/duckdb_inserts.py``), and the guard is race-free
there: one process at a time holds the file (``core.storage.duckdb.lease``) and lends its
connection to one transaction at a time, so nothing can insert the same key between the
check and the insert. Several rows go in one statement (on DuckDB a statement costs about
a millisecond however small), and statements are built once per shape and reused.
"""

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Executable, Row, Select, Table, bindparam, exists, select, union_all
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

Rows = Sequence[Mapping[str, Any]]
MAX_ROWS_A_STATEMENT = 32
"""More rows than this are inserted in several statements (each shape is compiled once)."""


def _on_duckdb(session: Session) -> bool:
    return session.get_bind().dialect.name == "duckdb"


def insert_if_absent(
    session: Session,
    table: Table,
    values: Mapping[str, Any],
    key: tuple[str, ...],
    returning: tuple[str, ...] = (),
) -> Row[Any] | None:
    """Insert one row unless a row with the same ``key`` columns exists.

    Returns the ``returning`` columns of the inserted row, or ``None`` when nothing was
    inserted (rowcounts are not reliable on DuckDB, so ask for at least one column when
    the answer matters).
    """
    inserted = insert_rows_if_absent(session, table, [values], key, returning)
    return inserted[0] if inserted else None


def insert_rows_if_absent(
    session: Session,
    table: Table,
    rows: Rows,
    key: tuple[str, ...],
    returning: tuple[str, ...] = (),
) -> list[Row[Any]]:
    """Insert each of ``rows`` whose ``key`` is not in the table yet, in one statement
    for up to ``MAX_ROWS_A_STATEMENT`` rows.

    The rows share their columns; of rows with the same key the first is inserted.
    Returns the ``returning`` columns of the rows inserted (none when ``returning`` is
    empty).
    """
    first: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for row in rows:
        first.setdefault(_key_of(row, key), row)
    rows = list(first.values())
    if not rows:
        return []
    if len(rows) > MAX_ROWS_A_STATEMENT:
        return [
            row
            for start in range(0, len(rows), MAX_ROWS_A_STATEMENT)
            for row in insert_rows_if_absent(
                session, table, rows[start : start + MAX_ROWS_A_STATEMENT], key, returning
            )
        ]
    columns = tuple(rows[0])
    if _on_duckdb(session):
        statement = _insert_guarded_rows(table, columns, key, returning, len(rows))
        params: Any = {f"{name}_{i}": row[name] for i, row in enumerate(rows) for name in columns}
    else:
        statement = _insert_on_conflict(table, key, returning)
        params = dict(rows[0]) if len(rows) == 1 else [dict(row) for row in rows]
    result = session.execute(statement, params)
    return list(result.all()) if returning else []


def upsert(session: Session, table: Table, key: tuple[str, ...], rows: Rows) -> None:
    """Insert each of ``rows``, or overwrite its other columns where its ``key`` exists.

    The rows share their columns; of rows with the same key the last is written. One
    insert statement for up to ``MAX_ROWS_A_STATEMENT`` rows (Postgres: one
    ``executemany``), and on DuckDB an update for each key that was already there.
    """
    rows = list({_key_of(row, key): row for row in rows}.values())
    if not rows:
        return
    if not _on_duckdb(session):
        fields = tuple(name for name in rows[0] if name not in key)
        session.execute(_upsert(table, key, fields), [dict(row) for row in rows])
        return
    inserted = {tuple(row) for row in insert_rows_if_absent(session, table, rows, key, key)}
    for row in rows:
        if _key_of(row, key) not in inserted:
            values = {name: value for name, value in row.items() if name not in key}
            where = {f"key_{name}": row[name] for name in key}
            session.execute(_update(table, key, tuple(values)), {**values, **where})


def _key_of(row: Mapping[str, Any], key: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(row[name] for name in key)


@functools.cache
def _insert_guarded_rows(
    table: Table,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    returning: tuple[str, ...],
    count: int,
) -> Executable:
    """DuckDB: ``INSERT ... SELECT <row 0> WHERE NOT EXISTS (<key 0>) UNION ALL ...``.

    Each row is guarded by its own constant lookup, which DuckDB answers from the key's
    index; a ``VALUES`` list joined against the table scans the whole table instead.
    """

    def guarded(i: int) -> Select[Any]:
        row = select(*(bindparam(f"{name}_{i}", type_=table.c[name].type) for name in columns))
        present = exists().where(*(table.c[name] == bindparam(f"{name}_{i}") for name in key))
        return row.where(~present)

    rows = guarded(0) if count == 1 else union_all(*(guarded(i) for i in range(count)))
    statement = insert(table).from_select(list(columns), rows)
    return statement.returning(*(table.c[name] for name in returning)) if returning else statement


@functools.cache
def _insert_on_conflict(
    table: Table, key: tuple[str, ...], returning: tuple[str, ...]
) -> Executable:
    statement = insert(table).on_conflict_do_nothing(index_elements=list(key))
    return statement.returning(*(table.c[name] for name in returning)) if returning else statement


@functools.cache
def _upsert(table: Table, key: tuple[str, ...], fields: tuple[str, ...]) -> Executable:
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=list(key), set_={name: statement.excluded[name] for name in fields}
    )


@functools.cache
def _update(table: Table, key: tuple[str, ...], fields: tuple[str, ...]) -> Executable:
    return (
        table.update()
        .where(*(table.c[name] == bindparam(f"key_{name}") for name in key))
        .values({name: bindparam(name) for name in fields})
    )
