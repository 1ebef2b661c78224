"""Postgres load benchmark: compare-and-swap tag moves from many processes at once.

16 processes (``--processes``) each make 100 (``--moves``) successful compare-and-swap
moves: read the tag, ``catalog.tags.compare_and_swap(name, current_target, new_target)``,
and on a lost race read again and retry. Two scenarios, one after the other in the same
process pool (spawned and warmed up first, so start-up is not timed):

(a) all processes move one shared tag (every move but one per round loses a race);
(b) each process moves its own tag (16 tags, no races).

Moves per second = successful moves / wall time from the common start instant to the
last process's finish. Figure (target from the performance issue): (b)'s moves per second,
target >= 500. (a)'s rate and both scenarios' lost races are raw lines.

Nothing may be lost: for every tag, the final revision must be its start revision plus
the moves made on it (+1600 for the shared tag, +100 for each separate tag), its history
must have grown by exactly that, each new move's ``from`` must be the previous move's
``to`` (revisions consecutive, ids increasing), and each process's ``moved_by`` must
appear exactly ``--moves`` times.

Run from the project root, with Postgres up (about a minute)::

    .venv/bin/python bench/postgres_load.py
    .venv/bin/python bench/postgres_load.py --json
    .venv/bin/python bench/postgres_load.py --database-url postgresql+psycopg://user@host/db

The catalog lives in a fresh schema (``CREATE SCHEMA bench_<hex>``, reached through a URL
with ``?options=-csearch_path%3Dbench_<hex>``), dropped at the end; blobs go to a
temporary directory, removed at the end.

Output: ``postgres separate-tag moves/s: <value> (target >= 500) OK|MISS``, followed by
indented ``raw`` lines. With ``--json`` the figures are printed to stdout as a JSON list of
``{"name", "value", "target", "unit", "ok", "direction"}`` objects (``bench/figures.py``;
``direction`` ``">="``: the target is a lower bound) and the human-readable report goes to
stderr; ``bench/run_all.py`` reads them. The exit status is 1 if a move was lost (whatever
the figures), else 0.
"""

import argparse
import sys
import time
import uuid
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TextIO

from figures import Figure, catalog_url, dump_json, figure, redact, work_directory

import core
from core.dag import canonical_json

DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SEPARATE_TARGET = 500.0
START_MARGIN = 2.0
"""Seconds between handing the work to the (warm) pool and the common start."""
TARGETS = 5


def format_line(fig: Figure) -> str:
    """``<name>: <value> (target >= <target>) OK|MISS``."""
    verdict = "OK" if fig.ok else "MISS"
    return f"{fig.name}: {fig.value:.1f} (target {fig.direction} {fig.target:g}) {verdict}"


def warm_up(seconds: float) -> None:
    """Occupy a pool process for ``seconds``, so that every process is spawned and imported."""
    time.sleep(seconds)


def move_loop(
    url: str, blob_root: str, tag: str, worker: int, targets: list[str], moves: int, start_at: float
) -> dict[str, Any]:
    """In a child: make ``moves`` successful compare-and-swap moves of ``tag`` from
    ``start_at`` on, retrying lost races. Returns the losses, the finish time (wall clock)
    and how late the process was ready (negative: early)."""
    pool = [uuid.UUID(t) for t in targets]
    losses = 0
    with core.connect(url, blob_root) as catalog:
        late = time.time() - start_at
        time.sleep(max(0.0, start_at - time.time()))
        done = 0
        while done < moves:
            current = catalog.tags.get_tag(tag).target_id
            new = pool[(pool.index(current) + 1 + (worker + done) % (len(pool) - 1)) % len(pool)]
            if catalog.tags.compare_and_swap(tag, current, new, moved_by=f"bench:{worker}"):
                done += 1
            else:
                losses += 1
        finished_at = time.time()
    return {"losses": losses, "finished_at": finished_at, "late": late}


@dataclass(frozen=True)
class Outcome:
    """One scenario's measurements and the problems its verification found."""

    moves: int
    wall: float
    losses: int
    late: float
    problems: list[str]

    @property
    def rate(self) -> float:
        return self.moves / self.wall


def verify(
    catalog: core.Services,
    tag: str,
    start_revision: int,
    old_history: list[core.TagMove],
    workers: list[int],
    moves: int,
) -> list[str]:
    """What is wrong with ``tag`` after ``workers`` each moved it ``moves`` times."""
    expected = moves * len(workers)
    problems = []
    revision = catalog.tags.get_tag(tag).revision
    if revision != start_revision + expected:
        problems.append(f"{tag}: revision {revision}, expected {start_revision + expected}")
    history = catalog.tags.get_history(tag)
    if len(history) != len(old_history) + expected:
        problems.append(f"{tag}: history grew by {len(history) - len(old_history)}, not {expected}")
    if history[: len(old_history)] != old_history:
        problems.append(f"{tag}: moves made before the run changed")
    previous = old_history[-1]
    for move in history[len(old_history) :]:
        if move.from_target_id != previous.to_target_id:
            problems.append(
                f"{tag}: move {move.id} is from {move.from_target_id}, "
                f"but move {previous.id} went to {previous.to_target_id}"
            )
        if move.revision != previous.revision + 1 or move.id <= previous.id:
            problems.append(
                f"{tag}: move {move.id} (revision {move.revision}) does not follow "
                f"move {previous.id} (revision {previous.revision})"
            )
        previous = move
    movers = [move.moved_by for move in history[len(old_history) :]]
    for worker in workers:
        count = movers.count(f"bench:{worker}")
        if count != moves:
            problems.append(f"{tag}: process {worker} recorded {count} moves, not {moves}")
    return problems


def run_scenario(
    pool: Executor,
    catalog: core.Services,
    url: str,
    blob_root: str,
    worker_tags: list[str],
    targets: list[str],
    moves: int,
) -> Outcome:
    """Process ``i`` makes ``moves`` moves of ``worker_tags[i]``, all from one start."""
    before = {
        tag: (catalog.tags.get_tag(tag).revision, catalog.tags.get_history(tag))
        for tag in set(worker_tags)
    }
    start_at = time.time() + START_MARGIN
    futures = [
        pool.submit(move_loop, url, blob_root, tag, worker, targets, moves, start_at)
        for worker, tag in enumerate(worker_tags)
    ]
    results = [future.result() for future in futures]
    wall = max(result["finished_at"] for result in results) - start_at
    problems = []
    for tag, (start_revision, old_history) in sorted(before.items()):
        workers = [w for w, name in enumerate(worker_tags) if name == tag]
        problems += verify(catalog, tag, start_revision, old_history, workers, moves)
    return Outcome(
        moves=moves * len(worker_tags),
        wall=wall,
        losses=sum(result["losses"] for result in results),
        late=max(result["late"] for result in results),
        problems=problems,
    )


def run(
    url: str, blob_root: Path, *, processes: int, moves: int, out: TextIO
) -> tuple[list[Figure], list[str]]:
    """Both scenarios on ``url``; the figures and every verification problem."""
    with core.connect(url, blob_root) as catalog:
        targets = []
        for i in range(TARGETS):
            cas_id = catalog.cas.store_content(canonical_json({"nodes": {f"n{i}": {"deps": []}}}))
            targets.append(str(catalog.artifacts.create_dag_version("bench-load", cas_id)))
        shared = ["bench/shared"] * processes
        separate = [f"bench/separate-{w}" for w in range(processes)]
        for tag in ["bench/shared", *separate]:
            catalog.tags.create_tag(tag, targets[0])

        with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(warm_up, 1.0) for _ in range(processes)]:
                future.result()
            args = (pool, catalog, url, str(blob_root))
            outcomes = {
                "shared-tag": run_scenario(*args, shared, targets, moves),
                "separate-tag": run_scenario(*args, separate, targets, moves),
            }

    rate = outcomes["separate-tag"].rate
    fig = figure("postgres separate-tag moves/s", rate, SEPARATE_TARGET, "moves/s", ">=")
    print(format_line(fig), file=out)
    problems = []
    for name, outcome in outcomes.items():
        tags = 1 if name == "shared-tag" else processes
        print(
            f"  raw {name}: {processes} processes x {moves} moves on {tags} tag(s): "
            f"{outcome.moves} moves in {outcome.wall:.2f} s = {outcome.rate:.1f} moves/s, "
            f"{outcome.losses} lost races retried, latest process ready "
            f"{outcome.late:+.2f} s after the start",
            file=out,
        )
        verdict = "nothing lost" if not outcome.problems else f"{len(outcome.problems)} PROBLEMS"
        print(f"  raw {name} verification: {verdict}", file=out)
        for problem in outcome.problems:
            print(f"    {problem}", file=out)
        problems += outcome.problems
    return [fig], problems


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default=DEFAULT_DATABASE_URL, help=f"default {DEFAULT_DATABASE_URL}"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--processes", type=int, default=16, help="processes (default 16)")
    parser.add_argument("--moves", type=int, default=100, help="moves per process (default 100)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    with (
        work_directory("bench-pg-load-", None) as work,
        catalog_url(args.database_url, work) as url,
    ):
        figures, problems = run(
            url, work / "blobs", processes=args.processes, moves=args.moves, out=out
        )
        print(f"  raw database: {redact(url)}", file=out)
    print(f"  raw total wall time: {time.perf_counter() - started:.1f} s", file=out)
    if args.json:
        dump_json(figures)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
