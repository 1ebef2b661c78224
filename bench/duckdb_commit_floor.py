"""How much of an output commit on DuckDB is DuckDB itself: the floor under the IO manager.

Commits a 50-node chain of outputs with ``AssetService.commit_output`` (each reading its
upstream value first, as a Dagster step does) and records every statement it sends,
then replays the same statements, parameters and transactions with the ``duckdb`` module
alone (no SQLAlchemy, no services, no blob files) on a copy of the catalog as it was
before the run. It prints median(replay) / median(commit_output) of the time per output
over the rounds: the share of a commit that no code above DuckDB can remove, and how the
replay's time splits by kind of statement (``BEGIN`` and ``COMMIT`` included). No target:
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


def statement_kind(statement: str) -> str:
    """What a statement does, and to which table: ``INSERT INTO cas_blobs``, ``COMMIT``."""
    words = statement.split()
    if words[0] == "INSERT":
        return " ".join(words[:3])
    if words[0] in ("SELECT", "WITH") and "FROM" in words:
        return f"{words[0]} ... FROM {words[words.index('FROM') + 1]}"
    return " ".join(words[:2])


def replay(path: Path, statements: list[Statement], spent: Counter[str]) -> float:
    """Seconds per output to run ``statements`` on the catalog at ``path``, DuckDB only;
    adds the seconds each kind of statement took to ``spent``."""
    connection = duckdb.connect(str(path))
    try:
        start = time.perf_counter()
        for statement, parameters in statements:
            began = time.perf_counter()
            result = connection.execute(statement, parameters)
            if "RETURNING" in statement or statement.lstrip().upper().startswith("SELECT"):
                result.fetchall()
            spent[statement_kind(statement)] += time.perf_counter() - began
        return (time.perf_counter() - start) / CHAIN_LENGTH
    finally:
        connection.close()


def measure(work: Path, rounds: int) -> list[str]:
    committed: list[float] = []
    replayed: list[float] = []
    counts: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    for index in range(rounds + 1):  # round 0 is a warm-up
        path = work / f"commit-{index}.duckdb"
        with core.connect(f"duckdb:///{path}", work / "blobs") as catalog:
            commit_chain(catalog, f"warm-{index}")
        copy = shutil.copy(path, work / f"replay-{index}.duckdb")  # the state before the run
        with core.connect(f"duckdb:///{path}", work / "blobs") as catalog:
            sent = record(catalog)
            seconds = commit_chain(catalog, f"run-{index}")
        replay_seconds = replay(Path(copy), sent, spent if index else Counter())
        if index:
            committed.append(seconds)
            replayed.append(replay_seconds)
            counts.update(statement_kind(s) for s, _ in sent)
    share = statistics.median(replayed) / statistics.median(committed)
    outputs = rounds * CHAIN_LENGTH
    per_output = sorted(counts, key=lambda kind: -spent[kind])
    return [
        f"DuckDB's share of an output commit: {share:.2f}",
        f"  raw commit_output median: {statistics.median(committed) * 1000:.1f} ms an output",
        f"  raw DuckDB replay median: {statistics.median(replayed) * 1000:.1f} ms an output",
        "  raw DuckDB time an output by statement (count an output, mean ms an output): "
        + "; ".join(
            f"{kind} {counts[kind] / outputs:.2f}x {spent[kind] / outputs * 1000:.2f} ms"
            for kind in per_output
        ),
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
