"""Insert-if-absent and upsert, written the way each backend runs them fastest.

Postgres gets ``INSERT ... ON CONFLICT``, which stays correct with many concurrent
writers. On DuckDB a row written with ``ON CONFLICT`` costs about 1.5 times as much as one
guarded by ``NOT EXISTS`` (``bench/duckdb_inserts.py``), and the guard is race-free
there: one process at a time holds the file (``core.duckdb_lease``) and lends its
connection to one transaction at a time, so nothing can insert the same key between the
check and the insert. Statements are built once per shape and reused with new parameters.
"""

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Executable, Row, Table, bindparam, exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session


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
    statement = _insert_if_absent(table, tuple(values), key, returning, _on_duckdb(session))
    result = session.execute(statement, dict(values))
    return result.first() if returning else None


def upsert(
    session: Session, table: Table, key: Mapping[str, Any], fields: Mapping[str, Any]
) -> None:
    """Insert the row ``key`` + ``fields``, or overwrite ``fields`` where ``key`` exists."""
    values = {**key, **fields}
    if not _on_duckdb(session):
        session.execute(_upsert(table, tuple(key), tuple(fields)), values)
        return
    if insert_if_absent(session, table, values, tuple(key), returning=(next(iter(key)),)):
        return
    where = {f"key_{name}": value for name, value in key.items()}
    session.execute(_update(table, tuple(key), tuple(fields)), {**fields, **where})


@functools.cache
def _insert_if_absent(
    table: Table,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    returning: tuple[str, ...],
    duckdb: bool,
) -> Executable:
    if duckdb:
        row = select(*(bindparam(name, type_=table.c[name].type) for name in columns))
        present = exists().where(*(table.c[name] == bindparam(name) for name in key))
        statement = insert(table).from_select(list(columns), row.where(~present))
    else:
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
