"""Publishes per second: 16 processes publish ``publish="run"`` runs that do not conflict.

Set-up (not timed): ``--processes`` x ``--runs`` staged runs, each pinned to ``main`` as
it stood after a seed commit and staging one node of its own (so every publish but the
first of each moment is a three-way merge over a tag another process just moved). Then
the processes, spawned and warmed up first, start together and each publishes its share
with ``catalog.runs.publish``; publishes per second = publishes / wall time from the
common start to the last process's finish. Target >= 200 (issue 21), on Postgres. Each
process publishes 50 runs by default (800 in all, about 4 s): with 20 (a 2-second run)
each process's first statements (compiled once a process) and the ragged start and end
weighed on the rate as much as the publishes did.

Nothing may be lost: every run must have moved ``main`` once (its run id on exactly one
move), ``main`` must hold every run's node, and its history must be a gap-free chain.

    .venv/bin/python bench/publish_load.py
    .venv/bin/python bench/publish_load.py --json --database-url postgresql+psycopg://...

Output: ``postgres publishes/s (16 processes, no conflicts): <value> (target >= 200)
OK|MISS`` and ``raw`` lines; ``--json`` prints the figures as ``bench/run_all.py`` reads
them. The exit status is 1 if a publish was lost, else 0.
"""

import argparse
import itertools
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from figures import catalog_url, dump_json, figure, format_figure, redact, work_directory

import core

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET = 200.0
JSON = "application/json"


def warm_up(seconds: float) -> None:
    time.sleep(seconds)


def publish_all(url: str, blob_root: str, run_ids: list[str], start_at: float) -> float:
    """Publish ``run_ids`` from ``start_at`` on; the time this process finished."""
    with core.connect(url, blob_root) as catalog:
        time.sleep(max(0.0, start_at - time.time()))
        for run_id in run_ids:
            if not catalog.runs.publish(run_id).changed:
                raise RuntimeError(f"publishing {run_id} moved nothing")
        return time.time()


def stage(catalog: core.Services, processes: int, runs: int) -> list[str]:
    catalog.assets.commit_output("seed", "main", "seed", b"0", media_type=JSON)
    run_ids = [f"p{p}-r{r}" for p in range(processes) for r in range(runs)]
    for run_id in run_ids:
        catalog.runs.create_run(run_id, "main", publish="run")
        catalog.assets.commit_output(
            run_id, "main", f"node-{run_id}", run_id.encode(), media_type=JSON
        )
    return run_ids


def verify(catalog: core.Services, run_ids: list[str]) -> list[str]:
    problems = []
    history = catalog.tags.get_history("main")
    landed = sorted(move.run_id or "" for move in history[1:])
    if landed != sorted(run_ids):
        problems.append(f"{len(landed)} publish moves for {len(run_ids)} runs")
    nodes = set(catalog.workflows.get_workflow_by_tag("main")["nodes"])
    missing = {f"node-{run_id}" for run_id in run_ids} - nodes
    if missing:
        problems.append(f"main lacks {len(missing)} published nodes")
    for before, after in itertools.pairwise(history):
        if after.revision != before.revision + 1 or after.from_target_id != before.to_target_id:
            problems.append(f"history breaks at revision {after.revision}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--runs", type=int, default=50, help="runs each process publishes")
    args = parser.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    with (
        work_directory("bench-publish-", None) as work,
        catalog_url(args.database_url, work) as url,
    ):
        blob_root = str(work / "blobs")
        with core.connect(url, blob_root) as catalog:
            run_ids = stage(catalog, args.processes, args.runs)
        with ProcessPoolExecutor(args.processes, mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(warm_up, 1.0) for _ in range(args.processes)]:
                future.result()
            start_at = time.time() + 1.0
            shares = [run_ids[p :: args.processes] for p in range(args.processes)]
            futures = [pool.submit(publish_all, url, blob_root, s, start_at) for s in shares]
            finished = max(future.result() for future in futures)
        wall = finished - start_at
        rate = len(run_ids) / wall
        backend = "postgres" if url.startswith("postgresql") else "duckdb"
        fig = figure(
            f"{backend} publishes/s ({args.processes} processes, no conflicts)",
            rate,
            TARGET,
            "publishes/s",
            ">=",
        )
        print(format_figure(fig), file=out)
        print(
            f"  raw {len(run_ids)} publishes in {wall:.2f} s, each a fast-forward or a "
            "three-way merge over the tag another process just moved",
            file=out,
        )
        with core.connect(url, blob_root) as catalog:
            problems = verify(catalog, run_ids)
        print(f"  raw verification: {problems or 'nothing lost'}", file=out)
        print(f"  raw database: {redact(url)}", file=out)
    print(f"  raw total wall time: {time.perf_counter() - started:.1f} s", file=out)
    if args.json:
        dump_json([fig])
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
