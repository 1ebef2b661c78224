"""Run every benchmark of the project and print each figure beside its target.

    .venv/bin/python bench/run_all.py                 # DuckDB default, Postgres load too
    .venv/bin/python bench/run_all.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/test

Each benchmark runs as its own process with ``--json``; their reports go to stderr, the
summary table (and the machine it was measured on) to stdout. Exit status 0 even when a
figure misses its target: this is a report.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).parent
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def benchmarks(postgres_url: str | None) -> list[tuple[str, list[str]]]:
    runs = [
        ("cas_throughput", []),
        ("tag_resolution", []),
        ("time_travel", []),
        ("dagster_overhead", []),
        ("dagster_overhead", ["--publish", "run"]),
        ("dagster_overhead", ["--steps", "direct", "--publish", "run"]),
        ("dagster_overhead", ["--steps", "served", "--publish", "run"]),
        ("duckdb_inserts", []),
        ("lock_storm", []),
        ("frames", []),
    ]
    if postgres_url:
        runs += [
            ("cas_throughput", ["--database-url", postgres_url]),
            ("tag_resolution", ["--database-url", postgres_url]),
            ("time_travel", ["--database-url", postgres_url]),
            ("dagster_overhead", ["--database-url", postgres_url]),
            ("dagster_overhead", ["--database-url", postgres_url, "--publish", "run"]),
            (
                "dagster_overhead",
                ["--database-url", postgres_url, "--steps", "direct", "--publish", "run"],
            ),
            (
                "dagster_overhead",
                ["--database-url", postgres_url, "--steps", "served", "--publish", "run"],
            ),
            ("postgres_load", ["--database-url", postgres_url]),
            ("publish_load", ["--database-url", postgres_url]),
            ("object_store", ["--database-url", postgres_url]),  # Postgres + s3 (moto)
        ]
    else:
        runs.append(("object_store", []))  # DuckDB + s3 (moto)
    return runs


def machine() -> str:
    memory_kib = next(
        (
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        ),
        0,
    )
    return (
        f"{platform.node()}: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{memory_kib / 1024 / 1024:.0f} GiB, Python {platform.python_version()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--postgres-url", default=os.environ.get("ORCHESTRATOR_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    parser.add_argument("--no-postgres", action="store_true", help="DuckDB benchmarks only.")
    args = parser.parse_args()
    postgres_url = None if args.no_postgres else args.postgres_url
    rows: list[tuple[str, dict[str, object]]] = []
    started = time.monotonic()
    for name, extra in benchmarks(postgres_url):
        backend = "postgres" if "--database-url" in extra else "duckdb"
        print(f"== {name} ({backend})", file=sys.stderr, flush=True)
        completed = subprocess.run(
            [sys.executable, str(HERE / f"{name}.py"), "--json", *extra],
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            rows.append(
                (
                    backend,
                    {
                        "name": f"{name} FAILED (exit {completed.returncode})",
                        "value": float("nan"),
                        "target": float("nan"),
                        "unit": "",
                        "ok": False,
                        "direction": "",
                    },
                )
            )
            continue
        rows += [(backend, fig) for fig in json.loads(completed.stdout)]
    print(
        f"measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}, "
        f"in {time.monotonic() - started:.0f} s\n"
    )
    print("| backend | figure | value | target | |\n|---|---|---|---|---|")
    for backend, fig in rows:
        unit = "" if fig["unit"] in ("ratio", "") else f" {fig['unit']}"
        print(
            f"| {backend} | {fig['name']} | {fig['value']:.3f}{unit} | "
            f"{fig['direction']} {fig['target']:g}{unit} | {'OK' if fig['ok'] else 'MISS'} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
