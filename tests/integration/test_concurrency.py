"""No lost updates: processes racing compare-and-swap moves of one tag."""

from pathlib import Path

import pytest

import core
from core.dag import canonical_json
from tests.support import workers
from tests.support.helpers import started_pool

PROCESSES = 4
MOVES_EACH = {"duckdb": 20, "postgresql": 50}
"""Moves a process makes: on DuckDB every move hands the file to the next process in line
(about 0.1 s a move here under the suite's load)."""


@pytest.mark.slow
def test_racing_compare_and_swap_loses_nothing(
    catalog: core.Services, database_url: str, blob_root: Path
) -> None:
    targets = []
    for i in range(5):
        cas_id = catalog.cas.store_content(canonical_json({"nodes": {f"n{i}": {"deps": []}}}))
        targets.append(str(catalog.artifacts.create_dag_version("etl", cas_id)))
    catalog.tags.create_tag("main", targets[0])
    start = catalog.tags.get_tag("main").revision
    history_before = len(catalog.tags.get_history("main"))
    moves_each = MOVES_EACH[catalog.database.dialect]

    with started_pool(PROCESSES) as (pool, start_at):
        futures = [
            pool.submit(
                workers.swap_loop,
                database_url,
                str(blob_root),
                "main",
                targets,
                moves_each,
                start_at,
            )
            for _ in range(PROCESSES)
        ]
        losses = [future.result() for future in futures]

    total = PROCESSES * moves_each
    assert catalog.tags.get_tag("main").revision == start + total
    history = catalog.tags.get_history("main")
    assert len(history) == history_before + total
    new_moves = history[history_before:]
    previous = history[history_before - 1]
    for move in new_moves:
        assert move.from_target_id == previous.to_target_id
        assert move.revision == previous.revision + 1
        assert move.id > previous.id
        previous = move
    print(f"\n{database_url.split(':')[0]}: {total} moves, {sum(losses)} lost races retried")
