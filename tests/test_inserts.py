"""Insert-if-absent and upsert, in each backend's form (NOT EXISTS on DuckDB, ON CONFLICT on
Postgres): the first write of a key inserts, later ones keep or overwrite it."""

import sqlalchemy as sa

import core
from core.models import CasBlob, RunIORow
from core.repository.clock import utc_now
from core.repository.inserts import insert_if_absent, upsert

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


def test_upsert_inserts_then_overwrites_the_fields(catalog: core.Services) -> None:
    key = {"run_id": "r", "direction": "output", "node": "n", "partition_key": ""}
    with catalog.database.transaction() as session:
        insert_if_absent(session, blobs, blob_row(1), ("cas_id",))
        for size in (1, 2):
            fields = {
                "cas_id": CAS_ID,
                "media_type": "text/plain",
                "size": size,
                "recorded_at": utc_now(),
            }
            upsert(session, run_io, key, fields)
    with catalog.database.transaction() as session:
        rows = session.execute(sa.select(run_io.c.node, run_io.c.size)).all()
    assert [tuple(row) for row in rows] == [("n", 2)]
