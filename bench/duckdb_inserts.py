"""Why the repositories guard inserts with ``NOT EXISTS`` on DuckDB instead of ``ON CONFLICT``.

Inserts rows that are new, then rows that exist already, into the catalog's
``cas_blobs`` table (one-column key) and ``run_io`` (four-column key), in a catalog
created by ``core.connect`` that already holds ``--rows`` rows in each, one transaction
per row as a commit writes them. The same SQLAlchemy statements the repositories run
(``core.storage.duckdb.inserts``): side A is the DuckDB form (``INSERT ... SELECT ... WHERE
NOT EXISTS``), side B the Postgres form (``INSERT ... ON CONFLICT DO NOTHING``) executed
on DuckDB. Rounds interleave A and B; the figure is median(A) / median(B) of the time per
row. Target <= 1.0 (the guard must not cost more than what it replaces).

Run from the project root::

    .venv/bin/python bench/duckdb_inserts.py
    .venv/bin/python bench/duckdb_inserts.py --rows 200000 --json
"""

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from unittest import mock

import sqlalchemy as sa
from figures import Figure, figure, finish, format_figure, work_directory

import core
from core.storage.duckdb import inserts
from core.storage.models import CasBlob, RunIORow

TARGET = 1.0


def fill(engine: sa.Engine, rows: int) -> None:
    """``rows`` rows in ``cas_blobs`` and in ``run_io`` (50 nodes a run, random run ids)."""
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO cas_blobs SELECT 'sha256:' || sha256(i::VARCHAR), 1, "
                "'application/json', now() FROM range(:rows) t(i)"
            ),
            {"rows": rows},
        )
        connection.execute(
            sa.text(
                "INSERT INTO run_io SELECT md5((i // 50)::VARCHAR), 'output', 'n' || (i % 50), "
                "'', 'sha256:' || sha256(0::VARCHAR), 'application/json', 1, now() "
                "FROM range(:rows) t(i)"
            ),
            {"rows": rows},
        )


def time_inserts(
    engine: sa.Engine, duckdb_form: bool, make_rows: Callable[[], list[tuple[sa.Table, dict]]]
) -> float:
    """Seconds per row to insert-if-absent each row in its own transaction."""
    rows = make_rows()
    with mock.patch.object(inserts, "_on_duckdb", return_value=duckdb_form):
        start = time.perf_counter()
        for table, values in rows:
            with sa.orm.Session(engine) as session, session.begin():
                key = ("cas_id",) if table is CasBlob.__table__ else tuple(values)[:4]
                inserts.insert_if_absent(session, table, values, key)
        return (time.perf_counter() - start) / len(rows)


def new_rows(count: int) -> Callable[[], list[tuple[sa.Table, dict]]]:
    """Fresh keys each call: half blobs, half lineage rows."""

    def make() -> list[tuple[sa.Table, dict]]:
        now = datetime.now()
        rows: list[tuple[sa.Table, dict]] = []
        for _ in range(count // 2):
            cas_id = "sha256:" + uuid.uuid4().hex * 2
            rows.append(
                (
                    CasBlob.__table__,
                    {"cas_id": cas_id, "size": 1, "media_type": "a/b", "created_at": now},
                )
            )
            rows.append(
                (
                    RunIORow.__table__,
                    {
                        "run_id": uuid.uuid4().hex,
                        "direction": "output",
                        "node": "n",
                        "partition_key": "",
                        "cas_id": cas_id,
                        "media_type": "a/b",
                        "size": 1,
                        "recorded_at": now,
                    },
                )
            )
        return rows

    return make


def measure(engine: sa.Engine, rounds: int, per_round: int) -> tuple[Figure, list[str]]:
    guarded: list[float] = []
    on_conflict: list[float] = []
    make = new_rows(per_round)
    time_inserts(engine, True, make)  # warm-up of both forms
    time_inserts(engine, False, make)
    for index in range(rounds):
        order = [(True, guarded), (False, on_conflict)]
        for duckdb_form, out in order if index % 2 == 0 else reversed(order):
            out.append(time_inserts(engine, duckdb_form, make))
    ratio = statistics.median(guarded) / statistics.median(on_conflict)
    fig = figure(
        "DuckDB insert-if-absent, NOT EXISTS guard / ON CONFLICT DO NOTHING", ratio, TARGET, "ratio"
    )
    raw = [
        f"  raw NOT EXISTS median: {statistics.median(guarded) * 1000:.3f} ms a row",
        f"  raw ON CONFLICT median: {statistics.median(on_conflict) * 1000:.3f} ms a row",
    ]
    return fig, raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--rows", type=int, default=100_000, help="rows already in each table")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side (default 5)")
    parser.add_argument("--per-round", type=int, default=200, help="rows inserted per round")
    args = parser.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    with work_directory("bench-duckdb-inserts-", args.dir) as work:
        core.connect(f"duckdb:///{work}/catalog.duckdb", work / "blobs").close()
        engine = sa.create_engine(f"duckdb+cached:///{work}/catalog.duckdb")
        try:
            fill(engine, args.rows)
            fig, raw = measure(engine, args.rounds, args.per_round)
        finally:
            engine.dispose()
    print(format_figure(fig), file=out)
    for line in raw:
        print(line, file=out)
    print(f"  raw rows already in cas_blobs and run_io: {args.rows}", file=out)
    return finish([fig], started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
