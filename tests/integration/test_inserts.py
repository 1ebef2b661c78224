"""Insert-if-absent and upsert, in each backend's form (NOT EXISTS on DuckDB, ON CONFLICT on
Postgres): the first write of a key inserts, later ones keep or overwrite it."""

import sqlalchemy as sa

import core
from core.repository.clock import utc_now
from core.storage.duckdb.inserts import insert_if_absent, insert_rows_if_absent, upsert
from core.storage.models import CasBlob, RunIORow
from tests.support.helpers import statements_sent

blobs = CasBlob.__table__
run_io = RunIORow.__table__
CAS_ID = "sha256:" + "ab" * 32


def blob_row(size: int) -> dict[str, object]:
    return {
        "cas_id": CAS_ID,
        "size": size,
        "media_type": "text/plain",
        "created_at": utc_now(),
    }


def test_insert_if_absent_keeps_the_first_row(catalog: core.Services) -> None:
    with catalog.database.transaction() as session:
        first = insert_if_absent(session, blobs, blob_row(1), ("cas_id",), returning=("cas_id",))
        again = insert_if_absent(session, blobs, blob_row(2), ("cas_id",), returning=("cas_id",))
    assert first is not None and first.cas_id == CAS_ID
    assert again is None
    with catalog.database.transaction() as session:
        assert session.scalars(sa.select(blobs.c.size)).all() == [1]


def io_row(node: str, size: int) -> dict[str, object]:
    return {
        "run_id": "r",
        "direction": "output",
        "node": node,
        "partition_key": "",
        "cas_id": CAS_ID,
        "media_type": "text/plain",
        "size": size,
        "recorded_at": utc_now(),
    }


IO_KEY = ("run_id", "direction", "node", "partition_key")


def test_upsert_inserts_then_overwrites_the_fields(catalog: core.Services) -> None:
    with catalog.database.transaction() as session:
        insert_if_absent(session, blobs, blob_row(1), ("cas_id",))
        for size in (1, 2):
            upsert(session, run_io, IO_KEY, [io_row("n", size)])
    with catalog.database.transaction() as session:
        rows = session.execute(sa.select(run_io.c.node, run_io.c.size)).all()
    assert [tuple(row) for row in rows] == [("n", 2)]


def test_many_rows_go_in_one_statement_new_ones_inserted_known_ones_overwritten(
    catalog: core.Services,
) -> None:
    with catalog.database.transaction() as session:
        insert_if_absent(session, blobs, blob_row(1), ("cas_id",))
        upsert(session, run_io, IO_KEY, [io_row("a", 1), io_row("b", 1)])
    sent = statements_sent(catalog)
    with catalog.database.transaction() as session:
        upsert(session, run_io, IO_KEY, [io_row("b", 2), io_row("c", 3), io_row("d", 4)])
        upsert(session, run_io, IO_KEY, [])
    inserts = [statement for statement in sent if statement.startswith("INSERT")]
    assert len(inserts) == 1  # DuckDB adds an UPDATE for "b"; Postgres does not
    with catalog.database.transaction() as session:
        rows = session.execute(sa.select(run_io.c.node, run_io.c.size).order_by("node")).all()
    assert [tuple(row) for row in rows] == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]


def test_of_rows_with_one_key_upsert_writes_the_last_insert_keeps_the_first(
    catalog: core.Services,
) -> None:
    with catalog.database.transaction() as session:
        insert_rows_if_absent(session, blobs, [blob_row(1), blob_row(2)], ("cas_id",))
        rows = [io_row(f"n{i}", 1) for i in range(40)] + [io_row("n0", 2), io_row("n39", 3)]
        upsert(session, run_io, IO_KEY, rows)  # 42 rows, 40 keys: more than one statement holds
    with catalog.database.transaction() as session:
        assert session.scalars(sa.select(blobs.c.size)).all() == [1]
        sizes = dict(session.execute(sa.select(run_io.c.node, run_io.c.size)).all())
    assert sizes == {**{f"n{i}": 1 for i in range(40)}, "n0": 2, "n39": 3}


def test_insert_rows_if_absent_returns_only_the_rows_it_inserted(catalog: core.Services) -> None:
    other = "sha256:" + "cd" * 32
    with catalog.database.transaction() as session:
        first = insert_rows_if_absent(session, blobs, [blob_row(1)], ("cas_id",), ("cas_id",))
        rows = [blob_row(5), {**blob_row(2), "cas_id": other}]
        both = insert_rows_if_absent(session, blobs, rows, ("cas_id",), ("cas_id",))
    assert [row.cas_id for row in first] == [CAS_ID]
    assert [row.cas_id for row in both] == [other]
    with catalog.database.transaction() as session:
        sizes = session.execute(sa.select(blobs.c.cas_id, blobs.c.size).order_by("cas_id")).all()
    assert [tuple(row) for row in sizes] == [(CAS_ID, 1), (other, 2)]


def test_more_rows_than_one_statement_holds(catalog: core.Services) -> None:
    with catalog.database.transaction() as session:
        insert_if_absent(session, blobs, blob_row(1), ("cas_id",))
        upsert(session, run_io, IO_KEY, [io_row(f"n{i}", 1) for i in range(0, 70, 2)])
        upsert(session, run_io, IO_KEY, [io_row(f"n{i}", 2) for i in range(70)])
    with catalog.database.transaction() as session:
        sizes = dict(session.execute(sa.select(run_io.c.node, run_io.c.size)).all())
    assert sizes == {f"n{i}": 2 for i in range(70)}
