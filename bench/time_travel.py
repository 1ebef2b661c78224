"""Time-travel refs benchmark: do ``main@{<time>}`` and ``main~1000`` cost what ``main``
costs, on a tag moved 100,000 times?

Figures (targets from the refs issue): the median latency of ``catalog.refs.resolve``
for ``main@{<time>}`` (an instant in the middle of the history) and for ``main~1000``,
each divided by the median latency of resolving ``main``. Target <= 3: an index on the
move times and first-parent skip pointers, not a scan or a 1000-step walk.

The history is written in bulk, ``--batch`` moves a transaction: a line of versions
sharing one blob, the tag's moves one minute apart, then the tag; the skip pointers come
from ``skip_nodes``, as a journal fold computes them. Each sample is the first resolve
of a freshly connected catalog (nothing cached in the process: for ``main`` a tag and an
artifact read); the refs are measured interleaved, ``--rounds`` samples each.

Run from the project root (a few minutes on DuckDB, most of it building)::

    .venv/bin/python bench/time_travel.py
    .venv/bin/python bench/time_travel.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Output: ``<figure>: <value> (target <= 3) OK|MISS`` lines and ``raw`` lines; ``--json``
prints the figures as JSON on stdout (the report goes to stderr). Exit status 0.
"""

import argparse
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

import sqlalchemy as sa
from figures import (
    Figure,
    add_catalog_arguments,
    catalog_url,
    figure,
    finish,
    format_figure,
    redact,
    work_directory,
)

import core
from core.storage.models import TagMoveRow, TagRow
from core.storage.skip_list import skip_nodes

START = datetime(2026, 1, 1)


def build(database_url: str, blobs: Path, moves: int, batch: int) -> datetime:
    """``main`` moved ``moves`` times, each to a new version on its target (rows written
    in bulk, with the skip pointers of ``skip_nodes``); the instant mid-history."""
    with core.connect(database_url, blobs) as catalog:
        cas_id = catalog.cas.store_content(b'{"nodes":{}}', "application/json")
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", {"nodes": {}}, tag="x"))
        ids = [uuid.uuid4() for _ in range(moves)]
        parents = [None, *ids[:-1]]
        nodes = skip_nodes(list(zip(ids, parents, strict=True)))
        names = ["id", "kind", "version_hash", "cas_id", "parent_id", "name", "created_at"]
        names += ["created_by", "metadata", "generation", "skip_id"]
        insert = (
            f"INSERT INTO artifacts ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
        )
        if catalog.database.dialect == "postgresql":
            insert = insert.replace("?", "%s")
        for first in range(0, moves, batch):
            chunk = range(first, min(first + batch, moves))
            with catalog.database.transaction() as session:
                session.connection().exec_driver_sql(
                    insert,
                    [
                        (
                            ids[i],
                            "dag_version",
                            f"sha256:{i:064x}",
                            cas_id,
                            parents[i],
                            "main",
                            START + timedelta(minutes=i),
                            "bench",
                            "{}",
                            nodes[ids[i]].generation,
                            nodes[ids[i]].skip_id,
                        )
                        for i in chunk
                    ],
                )
                session.execute(
                    sa.insert(TagMoveRow.__table__),
                    [
                        {
                            "id": i + 1_000_000,
                            "tag_name": "main",
                            "from_target_id": parents[i],
                            "to_target_id": ids[i],
                            "revision": i + 1,
                            "moved_at": START + timedelta(minutes=i),
                            "moved_by": "bench",
                        }
                        for i in chunk
                    ],
                )
        with catalog.database.transaction() as session:
            last = START + timedelta(minutes=moves - 1)
            session.execute(
                sa.insert(TagRow.__table__).values(
                    name="main",
                    target_id=ids[-1],
                    target_kind="dag_version",
                    revision=moves,
                    created_at=START,
                    updated_at=last,
                    updated_by="bench",
                )
            )
    return START + timedelta(minutes=moves // 2, seconds=30)


def cold(database_url: str, blobs: Path, ref: str) -> float:
    """Seconds for the first ``resolve(ref)`` of a freshly connected catalog."""
    with core.connect(database_url, blobs) as catalog:
        started = time.perf_counter()
        catalog.refs.resolve(ref)
        return time.perf_counter() - started


def run(database_url: str, blobs: Path, args: argparse.Namespace, out: TextIO) -> list[Figure]:
    started = time.perf_counter()
    middle = build(database_url, blobs, args.moves, args.batch)
    print(f"  raw build: {args.moves} moves in {time.perf_counter() - started:.1f} s", file=out)
    refs = {
        "main": "main",
        "time": f"main@{{{middle.isoformat()}}}",
        "ancestor": "main~1000",
        "position": f"main@{{{args.moves // 2}}}",
    }
    with core.connect(database_url, blobs) as catalog:
        middle_hash = f"sha256:{args.moves // 2:064x}"
        assert catalog.refs.resolve(refs["time"]).version_hash == middle_hash
        assert catalog.refs.resolve(refs["ancestor"]).version_hash == (
            f"sha256:{args.moves - 1001:064x}"
        )
    samples: dict[str, list[float]] = {name: [] for name in refs}
    for name in refs:  # warm-up
        cold(database_url, blobs, refs[name])
    for index in range(args.rounds):
        order = list(refs) if index % 2 == 0 else list(reversed(refs))
        for name in order:
            samples[name].append(cold(database_url, blobs, refs[name]))
    median = {name: statistics.median(values) for name, values in samples.items()}
    for name, ref in refs.items():
        print(f"  raw {ref}: median {median[name] * 1000:.3f} ms (cold)", file=out)
    figures = [
        figure("time-travel main@{<time>} / main", median["time"] / median["main"], 3, "ratio"),
        figure("time-travel main~1000 / main", median["ancestor"] / median["main"], 3, "ratio"),
    ]
    for fig in figures:
        print(format_figure(fig), file=out)
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_catalog_arguments(parser)
    parser.add_argument("--moves", type=int, default=100_000, help="moves of main")
    parser.add_argument("--batch", type=int, default=2_000, help="moves a transaction")
    parser.add_argument("--rounds", type=int, default=21, help="samples of each ref")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    with (
        work_directory("bench-time-travel-", args.dir) as work,
        catalog_url(args.database_url, work) as database_url,
    ):
        figures = run(database_url, work / "blobs", args, out)
        print(f"  raw database: {redact(database_url)}", file=out)
    return finish(figures, started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
