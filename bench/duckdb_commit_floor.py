"""How much of an ordinary output commit on DuckDB is DuckDB itself.

Commits a 50-node chain of outputs with ``AssetService.commit_output`` (each reading its
upstream value first, as a Dagster step does), each in an ordinary transaction of its own:
the path of a run's first output in a process, where most outputs are journaled instead
(``docs/duckdb-commit-cost.md``). It records every statement the commits send,
then replays the same statements, parameters and transactions with the ``duckdb`` module
alone (no SQLAlchemy, no services, no blob files) on a copy of the catalog as it was
before the run. It prints median(replay) / median(commit_output) of the time per output
over the rounds: the share of a commit that no code above DuckDB can remove, and how the
replay's time splits by kind of statement (``BEGIN`` and ``COMMIT`` included). No target:
a diagnostic for ``bench/dagster_overhead.py``.

The replay runs twice a round: back to back, and with ``--gap-ms`` of Python work before
each transaction (as Dagster does between two steps; the time excludes the gap). The
ratio of the two is what DuckDB's statements cost in a Dagster run over what they cost in
a tight loop (most likely their code and data leave the CPU's caches meanwhile).

Run from the project root::

    .venv/bin/python bench/duckdb_commit_floor.py
    .venv/bin/python bench/duckdb_commit_floor.py --rounds 5 --gap-ms 50
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
DEFAULT_GAP_MS = 50.0
"""Python work before each replayed transaction: about what Dagster spends on a step."""
Statement = tuple[str, Any]


def commit_chain(catalog: core.Services, run_id: str) -> float:
    """Seconds per output to commit the chain as run ``run_id``."""
    start = time.perf_counter()
    for index in range(CHAIN_LENGTH):
        if index:
            upstream = catalog.assets.locate_input(run_id, "main", f"a{index - 1}")
            catalog.assets.read(upstream)
        value = json.dumps({"step": index, "run": run_id, "values": list(range(16))})
        with catalog.database.transaction():  # ordinary: no journal
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


def python_work(seconds: float) -> None:
    """Allocate and hash small objects for ``seconds``, as an interpreter busy elsewhere."""
    end = time.perf_counter() + seconds
    scratch: dict[int, str] = {}
    while time.perf_counter() < end:
        scratch[len(scratch) % 4096] = json.dumps({"n": len(scratch), "s": str(scratch)[:64]})


def replay(path: Path, statements: list[Statement], spent: Counter[str], gap: float = 0.0) -> float:
    """Seconds per output to run ``statements`` on the catalog at ``path``, DuckDB only,
    with ``gap`` seconds of Python work (not counted) before each ``BEGIN``; adds the
    seconds each kind of statement took to ``spent``."""
    connection = duckdb.connect(str(path))
    try:
        elapsed = 0.0
        for statement, parameters in statements:
            if gap and statement == "BEGIN":
                python_work(gap)
            began = time.perf_counter()
            result = connection.execute(statement, parameters)
            if "RETURNING" in statement or statement.lstrip().upper().startswith("SELECT"):
                result.fetchall()
            took = time.perf_counter() - began
            spent[statement_kind(statement)] += took
            elapsed += took
        return elapsed / CHAIN_LENGTH
    finally:
        connection.close()


def measure(work: Path, rounds: int, gap: float) -> list[str]:
    committed: list[float] = []
    replayed: list[float] = []
    replayed_after_work: list[float] = []
    counts: Counter[str] = Counter()
    spent: Counter[str] = Counter()
    spent_after_work: Counter[str] = Counter()
    for index in range(rounds + 1):  # round 0 is a warm-up
        path = work / f"commit-{index}.duckdb"
        with core.connect(f"duckdb:///{path}", work / "blobs") as catalog:
            commit_chain(catalog, f"warm-{index}")
        before = work / f"before-{index}.duckdb"  # the state before the run, for each replay
        shutil.copy(path, before)
        with core.connect(f"duckdb:///{path}", work / "blobs") as catalog:
            sent = record(catalog)
            seconds = commit_chain(catalog, f"run-{index}")
        tight = replay(
            Path(shutil.copy(before, work / f"tight-{index}.duckdb")),
            sent,
            spent if index else Counter(),
        )
        after_work = replay(
            Path(shutil.copy(before, work / f"after-work-{index}.duckdb")),
            sent,
            spent_after_work if index else Counter(),
            gap,
        )
        if index:
            committed.append(seconds)
            replayed.append(tight)
            replayed_after_work.append(after_work)
            counts.update(statement_kind(s) for s, _ in sent)
    share = statistics.median(replayed) / statistics.median(committed)
    cold = statistics.median(replayed_after_work) / statistics.median(replayed)
    return [
        f"DuckDB's share of an output commit: {share:.2f}",
        f"  raw commit_output median: {statistics.median(committed) * 1000:.1f} ms an output",
        f"  raw DuckDB replay median: {statistics.median(replayed) * 1000:.1f} ms an output",
        _by_statement("back to back", counts, spent, rounds),
        f"DuckDB replay after {gap * 1000:g} ms of Python work / back to back: {cold:.2f}",
        f"  raw DuckDB replay median after work: "
        f"{statistics.median(replayed_after_work) * 1000:.1f} ms an output",
        _by_statement("after work", counts, spent_after_work, rounds),
    ]


def _by_statement(label: str, counts: Counter[str], spent: Counter[str], rounds: int) -> str:
    outputs = rounds * CHAIN_LENGTH
    return f"  raw DuckDB time an output by statement, {label} (count, mean ms): " + "; ".join(
        f"{kind} {counts[kind] / outputs:.2f}x {spent[kind] / outputs * 1000:.2f}"
        for kind in sorted(counts, key=lambda kind: -spent[kind])
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument(
        "--gap-ms",
        type=float,
        default=DEFAULT_GAP_MS,
        help=f"ms of Python work before each replayed transaction (default {DEFAULT_GAP_MS:g})",
    )
    args = parser.parse_args(argv)
    with work_directory("bench-duckdb-floor-", args.dir) as work:
        for line in measure(work, args.rounds, args.gap_ms / 1000):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
