"""Load on Postgres, bounded: 16 processes racing compare-and-swap moves lose nothing.

Two scenarios in one fresh schema: all processes on one shared tag, then each on its own
tag. Moves per second are printed (run with ``-s``) but not asserted: the speed target
lives in ``bench/postgres_load.py``.
"""

import time
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pytest

import core
from core.dag import canonical_json
from tests.support import load_workers, workers

PROCESSES = 16
MOVES_EACH = 25
START_MARGIN = 2.0


def run_scenario(
    pool: Executor,
    catalog: core.Services,
    url: str,
    blob_root: str,
    worker_tags: list[str],
    targets: list[str],
) -> str:
    """Race ``MOVES_EACH`` moves per worker (worker ``i`` on ``worker_tags[i]``); check that
    every tag gained exactly its workers' moves, chained; return a one-line report."""
    before = {
        tag: (catalog.tags.get_tag(tag).revision, catalog.tags.get_history(tag))
        for tag in set(worker_tags)
    }
    start_at = time.time() + START_MARGIN
    futures = [
        pool.submit(
            load_workers.cas_moves, url, blob_root, tag, worker, targets, MOVES_EACH, start_at
        )
        for worker, tag in enumerate(worker_tags)
    ]
    results: list[dict[str, Any]] = [future.result() for future in futures]
    wall = max(result["finished_at"] for result in results) - start_at

    for tag, (start_revision, old_history) in before.items():
        workers = [w for w, name in enumerate(worker_tags) if name == tag]
        expected = MOVES_EACH * len(workers)
        history = catalog.tags.get_history(tag)
        assert catalog.tags.get_tag(tag).revision == start_revision + expected, tag
        assert len(history) == len(old_history) + expected, tag
        assert history[: len(old_history)] == old_history, tag
        previous = old_history[-1]
        for move in history[len(old_history) :]:
            assert move.from_target_id == previous.to_target_id, (tag, move)
            assert move.revision == previous.revision + 1, (tag, move)
            assert move.id > previous.id, (tag, move)
            previous = move
        by_worker = [move.moved_by for move in history[len(old_history) :]]
        assert {f"load:{w}": by_worker.count(f"load:{w}") for w in workers} == {
            f"load:{w}": MOVES_EACH for w in workers
        }, tag

    moves = MOVES_EACH * len(worker_tags)
    losses = sum(result["losses"] for result in results)
    late = max(result["late"] for result in results)
    return (
        f"{len(set(worker_tags))} tag(s): {moves} moves in {wall:.2f} s = {moves / wall:.0f} "
        f"moves/s, {losses} lost races retried (latest worker ready {late:+.2f} s after start)"
    )


@pytest.mark.slow
def test_postgres_compare_and_swap_load_loses_nothing(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    blob_root = str(tmp_path / "blobs")
    with core.connect(postgres_schema_url, blob_root) as catalog:
        targets = []
        for i in range(5):
            cas_id = catalog.cas.store_content(canonical_json({"nodes": {f"n{i}": {"deps": []}}}))
            targets.append(str(catalog.artifacts.create_dag_version("load", cas_id)))
        separate = [f"load/separate-{w}" for w in range(PROCESSES)]
        for tag in ["load/shared", *separate]:
            catalog.tags.create_tag(tag, targets[0])

        with ProcessPoolExecutor(PROCESSES, mp_context=get_context("spawn")) as pool:
            for future in [pool.submit(workers.warm_up, 1.0) for _ in range(PROCESSES)]:
                future.result()
            args = (pool, catalog, postgres_schema_url, blob_root)
            shared = run_scenario(*args, ["load/shared"] * PROCESSES, targets)
            own = run_scenario(*args, separate, targets)
    print(f"\npostgres, {PROCESSES} processes x {MOVES_EACH} moves")
    print(f"  shared tag:    {shared}")
    print(f"  separate tags: {own}")
