"""DuckDB lock storm: how long a process waits for the one catalog file under load.

8 processes run a random mix of reads and writes (commit an output, read a workflow, read
a tag's history, compare-and-swap a tag, store and read a blob) and a sensor-like poller
reads the moves of ``main`` every 0.2 s, all on one DuckDB file for 20 s (``--duration``):
the load of ``tests/integration/test_lock_storm.py`` (``tests/support/load_workers.py``),
as a laptop running ``dagster dev`` with the multiprocess executor has it. Every
operation's latency counts, waiting for the file included.

Figures (targets from issue 19): the p99 latency of all operations, target <= 1 s; the
failed operations, target 0; with the baseline (below), the throughput (operations per
second, from the common start to the last worker's finish) as a ratio to the baseline's,
target >= 0.8 (our own: handing the file over in order may cost at most a fifth of the
throughput; each hand-over costs a DuckDB open and close, 20-50 ms, that the polling
holder often saved by taking the file straight back). Each storm's throughput, p50, p99
and max are raw lines.

Before and after in one run: unless ``--no-baseline``, the same storm first runs with the
hand-over this project had before the fair queue (jittered polling for the ``flock``),
read with ``git show`` from commit ``BASELINE`` and put in place of the lease in the
storm's processes only; then the fair hand-over of the working tree. Without git or that
commit the baseline is skipped, with a note.

Run from the project root (about a minute, half with ``--no-baseline``)::

    .venv/bin/python bench/lock_storm.py
    .venv/bin/python bench/lock_storm.py --duration 10 --json

With ``--json`` the figures go to stdout as JSON (``bench/figures.py``) and the report to
stderr, as ``bench/run_all.py`` reads them. Exit status 0 (this is a report).
"""

import argparse
import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from figures import Figure, figure, finish, format_figure, work_directory

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # tests.support.load_workers, here and in spawned children
    sys.path.insert(0, str(REPO_ROOT))

from tests.support import load_workers  # noqa: E402

BASELINE = "f9f458a"
"""The last commit whose lease polled for the file with jittered backoff."""
LEASE_PATH = "core/storage/duckdb/lease.py"
WORKERS = load_workers.STORM_WORKERS
P99_TARGET = 1.0
THROUGHPUT_TARGET = 0.8


@dataclass(frozen=True)
class Storm:
    """One storm's operation latencies (seconds), failures and wall time."""

    latencies: list[float]
    failures: int
    wall: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def percentile(self, q: float) -> float:
        return load_workers.percentile(self.latencies, q)


def use_lease(path: str | None) -> None:
    """Pool initializer: with a ``path``, the catalog of this process takes the file with
    the lease module at ``path`` instead of its own."""
    if path is None:
        return
    import core.storage.db as db

    old = load_module(path)
    for name in ("Backoff", "DuckDBFileLock"):
        setattr(db, name, getattr(old, name))

    class BaselineLease(old.DuckDBLease):  # type: ignore[name-defined,misc]
        """The baseline's lease under today's name for its fold hook (``settle`` then)."""

        def __init__(self, *args: Any, before_lend: Any, **kwargs: Any) -> None:
            super().__init__(*args, settle=before_lend, **kwargs)

    db.DuckDBLease = BaselineLease  # type: ignore[misc]


def load_module(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("baseline_lease", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def baseline_lease(work: Path, out: TextIO) -> str | None:
    """The baseline lease's source, written under ``work``; ``None`` (said) if unavailable."""
    try:
        source = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "show", f"{BASELINE}:{LEASE_PATH}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # NotDeferrable has moved since: the baseline's own import of it, redirected
        source = source.replace(
            "from core.errors import NotDeferrable, ",
            "from core.storage.session_info import NotDeferrable\nfrom core.errors import ",
        )
        path = work / "baseline_lease.py"
        path.write_text(source)
        load_module(str(path))  # it still fits the rest of the package
    except (OSError, subprocess.CalledProcessError, ImportError) as exc:
        print(f"  raw baseline skipped: no lease of commit {BASELINE} ({exc})", file=out)
        return None
    return str(path)


def storm(work: Path, duration: float, lease: str | None) -> Storm:
    """The lock storm on a fresh catalog in ``work``, with the lease at ``lease`` (or ours)."""
    work.mkdir()
    run = load_workers.run_storm(work, duration, initializer=use_lease, initargs=(lease,))
    latencies = [value for values in run.latencies().values() for value in values]
    return Storm(latencies, len(run.errors()), run.wall)


def describe(name: str, result: Storm) -> str:
    return (
        f"  raw {name}: {len(result.latencies)} operations in {result.wall:.1f} s = "
        f"{result.rate:.1f} ops/s, p50 {result.percentile(50) * 1000:.0f} ms, "
        f"p99 {result.percentile(99) * 1000:.0f} ms, "
        f"max {max(result.latencies, default=float('nan')) * 1000:.0f} ms, "
        f"{result.failures} failed"
    )


def run(work: Path, duration: float, baseline: bool, out: TextIO) -> list[Figure]:
    before = None
    if baseline and (lease := baseline_lease(work, out)) is not None:
        before = storm(work / "baseline", duration, lease)
    after = storm(work / "fair", duration, None)
    name = f"DuckDB lock storm ({WORKERS} workers + poller), fair hand-over"
    figures = [
        figure(f"{name}, p99 latency", after.percentile(99), P99_TARGET, "s"),
        figure(f"{name}, failed operations", after.failures, 0, "ops"),
    ]
    if before is not None:
        figures.append(
            figure(
                f"{name}, throughput / polling hand-over's",
                after.rate / before.rate,
                THROUGHPUT_TARGET,
                "ratio",
                ">=",
            )
        )
    for fig in figures:
        print(format_figure(fig), file=out)
    if before is not None:
        print(describe(f"polling hand-over of {BASELINE} (before)", before), file=out)
        print(
            f"  raw p99 before / after: {before.percentile(99) / after.percentile(99):.2f}",
            file=out,
        )
    print(describe("fair hand-over (after)", after), file=out)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per storm")
    parser.add_argument(
        "--no-baseline", action="store_true", help=f"skip the hand-over of {BASELINE}"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    with work_directory("bench-lock-storm-", args.dir) as work:
        figures = run(work, args.duration, not args.no_baseline, out)
    return finish(figures, started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
