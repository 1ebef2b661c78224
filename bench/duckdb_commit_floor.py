"""How much of an output commit on DuckDB is DuckDB itself: the floor under the IO manager.

Commits a 50-node chain of outputs with ``AssetService.commit_output`` (each reading its
upstream value first, as a Dagster step does) and records every statement it sends,
then replays the same statements, parameters and transactions with the ``duckdb`` module
alone (no SQLAlchemy, no services, no blob files) on a copy of the catalog as it was
before the run. It prints median(replay) / median(commit_output) of the time per output
over the rounds: the share of a commit that no code above DuckDB can remove. No target:
a diagnostic for ``bench/dagster_overhead.py``.

Run from the project root::

    .venv/bin/python bench/duckdb_commit_floor.py
    .venv/bin/python bench/duckdb_commit_floor.py --rounds 5
"""

import argparse
import json
import shutil
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
from figures import work_directory
from sqlalchemy import event

import core

CHAIN_LENGTH = 50
Statement = tuple[str, Any]


def commit_chain(catalog: core.Services, run_id: str) -> float:
    """Seconds per output to commit the chain as run ``run_id``."""
    start = time.perf_counter()
    for index in range(CHAIN_LENGTH):
        if index:
            upstream = catalog.assets.locate_input(run_id, "main", f"a{index - 1}")
            catalog.assets.read(upstream)
        value = json.dumps({"step": index, "run": run_id, "values": list(range(16))})
        catalog.assets.commit_output(
            run_id,
            "main",
            f"a{index}",
            value.encode(),
            media_type="application/json",
            deps=[f"a{index - 1}"] if index else [],
            job_name="bench",
        )
    return (time.perf_counter() - start) / CHAIN_LENGTH


def record(catalog: core.Services) -> list[Statement]:
    """Every statement (and BEGIN/COMMIT) the catalog's engine sends from now on."""
    sent: list[Statement] = []
    engine = catalog.database.engine
    event.listen(engine, "begin", lambda _connection: sent.append(("BEGIN", None)))
    event.listen(engine, "commit", lambda _connection: sent.append(("COMMIT", None)))
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cursor, statement, parameters, _ctx, _many: sent.append(
            (statement, parameters)
        ),
    )
    return sent


def replay(path: Path, statements: list[Statement]) -> float:
    """Seconds per output to run ``statements`` on the catalog at ``path``, DuckDB only."""
    connection = duckdb.connect(str(path))
    try:
        start = time.perf_counter()
        for statement, parameters in statements:
            result = connection.execute(statement, parameters)
            if "RETURNING" in statement or statement.lstrip().upper().startswith("SELECT"):
                result.fetchall()
        return (time.perf_counter() - start) / CHAIN_LENGTH
    finally:
        connection.close()


def measure(work: Path, rounds: int) -> list[str]:
    committed: list[float] = []
    replayed: list[float] = []
    counts: Counter[str] = Counter()
    for index in range(rounds + 1):  # round 0 is a warm-up
        path = work / f"commit-{index}.duckdb"
        with core.connect(f"duckdb:///{path}", work / "blobs") as catalog:
            commit_chain(catalog, f"warm-{index}")
        copy = shutil.copy(path, work / f"replay-{index}.duckdb")  # the state before the run
        with core.connect(f"duckdb:///{path}", work / "blobs") as catalog:
            sent = record(catalog)
            seconds = commit_chain(catalog, f"run-{index}")
        replay_seconds = replay(Path(copy), sent)
        if index:
            committed.append(seconds)
            replayed.append(replay_seconds)
            counts.update(
                " ".join(s.split()[:3])
                for s, _ in sent
                if s.startswith(("INSERT", "UPDATE", "SELECT"))
            )
    share = statistics.median(replayed) / statistics.median(committed)
    per_output = sorted(counts.items(), key=lambda item: -item[1])
    return [
        f"DuckDB's share of an output commit: {share:.2f}",
        f"  raw commit_output median: {statistics.median(committed) * 1000:.1f} ms an output",
        f"  raw DuckDB replay median: {statistics.median(replayed) * 1000:.1f} ms an output",
        "  raw statements an output: "
        + "; ".join(f"{name} {count / rounds / CHAIN_LENGTH:.1f}" for name, count in per_output),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    args = parser.parse_args(argv)
    with work_directory("bench-duckdb-floor-", args.dir) as work:
        for line in measure(work, args.rounds):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
