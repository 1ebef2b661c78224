"""What storing DataFrames as versioned Parquet costs, against the usual ways to store them.

Two figures, each a Dagster run (``dagster.materialize``, in process) of two assets:
``frame_out`` returns a 2,000,000-row, 10-column frame (built once, before timing; each
run replaces its ``run`` column, so every run stores new content) and ``frame_in`` reads
it back (annotated with the frame type) and returns its row count (stored by Dagster's
``FilesystemIOManager`` on both sides, so only the frame's write and read differ):

1. polars: ``VersionedIOManager`` (side A) ÷ dagster-polars's ``PolarsParquetIOManager``
   (side B, its defaults: zstd, no statistics), both on the work directory's disk. Target
   <= 1.2. Needs ``dagster-polars``; without it the figure is left out, saying why.
2. pandas: ``VersionedIOManager`` ÷ an IO manager that writes and reads the Parquet file by
   hand with pyarrow (``pq.write_table(pa.Table.from_pandas(df), path)``,
   ``pq.read_table(path).to_pandas()``) on the same disk. Target <= 1.3.

A figure's runs are interleaved, A and B alternating which goes first in each round, after
one unrecorded warm-up of each; the figure is median(A) / median(B) of the wall clock of
the ``materialize`` call. Side A's catalog is a DuckDB file in the work directory (a
temporary directory under ``--dir`` if given, removed at the end), blobs next to it;
``--database-url`` puts it on Postgres instead. The raw lines give each side's median
and every round's wall clock.

Run from the project root::

    .venv/bin/python bench/frames.py
    .venv/bin/python bench/frames.py --rounds 7 --json

With ``--json`` the figures go to stdout as JSON and the report to stderr. Exit status 0
whatever the figures are.
"""

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from figures import (
    Figure,
    add_catalog_arguments,
    catalog_url,
    figure,
    finish,
    format_figure,
    interleave,
    redact,
    work_directory,
)

from orchestrator_dagster import OrchestratorResource, VersionedIOManager

ROWS = 2_000_000
POLARS_TARGET = 1.2
PANDAS_TARGET = 1.3
QUIET: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def base_frame(rows: int) -> pl.DataFrame:
    """Ten columns of the usual kinds: integers, floats, strings, a category, a timestamp."""
    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "id": np.arange(rows),
            "quantity": rng.integers(0, 1000, rows),
            "customer": rng.integers(0, 10**9, rows),
            "price": rng.random(rows),
            "score": rng.normal(size=rows),
            "amount": np.round(rng.random(rows) * 100, 2),
            "sku": [f"sku-{i % 5000}" for i in range(rows)],
            "colour": pl.Series(rng.choice(["red", "green", "blue"], rows), dtype=pl.Categorical),
            "at": pl.datetime_range(
                pl.datetime(2026, 1, 1),
                pl.datetime(2026, 1, 1) + pl.duration(seconds=rows - 1),
                "1s",
                eager=True,
                time_zone="UTC",
            ),
            "run": np.zeros(rows, dtype=np.int64),
        }
    )


class HandWrittenPyarrowIOManager(dg.ConfigurableIOManager):
    """Side B of the pandas figure: one Parquet file per asset, written and read by hand."""

    base_dir: str

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        return Path(self.base_dir) / f"{context.asset_key.to_user_string()}.parquet"

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        pq.write_table(pa.Table.from_pandas(obj), self._path(context))

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return pq.read_table(self._path(context)).to_pandas()


def assets_for(frame: Any, frame_type: type) -> list[dg.AssetsDefinition]:
    """``frame_out`` (``frame`` with a new ``run`` column) and ``frame_in`` (its rows)."""
    counter = iter(range(1, 1 << 30))

    if isinstance(frame, pl.DataFrame):

        def changed() -> Any:
            return frame.with_columns(run=pl.lit(next(counter), dtype=pl.Int64))
    else:

        def changed() -> Any:
            return frame.assign(run=next(counter))

    @dg.asset(name="frame_out")
    def frame_out() -> frame_type:  # type: ignore[valid-type]
        return changed()

    @dg.asset(name="frame_in", io_manager_key="small", ins={"frame": dg.AssetIn("frame_out")})
    def frame_in(frame: frame_type) -> int:  # type: ignore[valid-type]
        assert isinstance(frame, frame_type), type(frame)
        return len(frame)

    return [frame_out, frame_in]


def timed_run(
    assets: list[dg.AssetsDefinition],
    io_manager: Any,
    instance: dg.DagsterInstance,
    small: Any,
    rows: int,
) -> float:
    started = time.perf_counter()
    result = dg.materialize(
        assets,
        resources={"io_manager": io_manager, "small": small},
        instance=instance,
        run_config=QUIET,
    )
    elapsed = time.perf_counter() - started
    if not result.success or result.output_for_node("frame_in") != rows:
        raise SystemExit("a benchmark run failed")
    return elapsed


def probe(
    assets: list[dg.AssetsDefinition], io_manager: Any, instance: dg.DagsterInstance, small: Any
) -> str | None:
    """Why a run with ``io_manager`` fails here (its first error line), or ``None``."""
    silent = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    result = dg.materialize(
        assets,
        resources={"io_manager": io_manager, "small": small},
        instance=instance,
        run_config=silent,
        raise_on_error=False,
    )
    if result.success:
        return None
    errors = [
        event.step_failure_data.error
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data.error
    ]
    while errors and errors[0].cause is not None:
        errors = [errors[0].cause]  # the library's own error, not Dagster's wrapper
    return errors[0].message.strip().splitlines()[0] if errors else "the run failed"


def side_by_side(
    name: str,
    work: Path,
    database_url: str,
    frame: Any,
    frame_type: type,
    other: Any,
    other_name: str,
    rounds: int,
    target: float,
    out: Any,
) -> Figure | None:
    """The figure ``name`` (``None``, saying why, if side B cannot run here)."""
    assets = assets_for(frame, frame_type)
    orchestrator = OrchestratorResource(database_url=database_url, blob_root=str(work / "blobs"))
    versioned = VersionedIOManager(orchestrator=orchestrator)
    small = dg.FilesystemIOManager(base_dir=str(work / "small"))
    home = work / "dagster"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:

        def run(io_manager: Any) -> Callable[[], float]:
            return lambda: timed_run(assets, io_manager, instance, small, len(frame))

        failure = probe(assets, other, instance, small)
        if failure is not None:  # a library pairing that cannot run is reported, not a crash
            print(f"  {name}: not measured: {other_name} failed: {failure}", file=out)
            return None
        ours, theirs = interleave(rounds, run(versioned), run(other))
    fig = figure(name, statistics.median(ours) / statistics.median(theirs), target, "ratio")
    print(format_figure(fig), file=out)
    print(
        f"  raw VersionedIOManager median: {statistics.median(ours):.3f} s over {rounds} "
        f"rounds: " + ", ".join(f"{t:.3f}" for t in ours),
        file=out,
    )
    print(
        f"  raw {other_name} median: {statistics.median(theirs):.3f} s: "
        + ", ".join(f"{t:.3f}" for t in theirs),
        file=out,
    )
    return fig


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    add_catalog_arguments(parser)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rows", type=int, default=ROWS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = sys.stderr if args.json else sys.stdout
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    started = time.perf_counter()
    figures: list[Figure] = []
    with work_directory("bench-frames-", args.dir) as work:
        frame = base_frame(args.rows)
        print(
            f"frames: {frame.height:,} rows x {frame.width} columns "
            f"({frame.estimated_size() / 1e6:.0f} MB in polars), {args.rounds} rounds, "
            f"work directory {work}",
            file=out,
        )
        (work / "polars").mkdir()
        with catalog_url(args.database_url, work / "polars") as url:
            print(f"  catalog: {redact(url)}", file=out)
            if importlib.util.find_spec("dagster_polars") is None:
                print(
                    "  polars figure not measured: it needs dagster-polars "
                    "(pip install dagster-polars)",
                    file=out,
                )
            else:
                from dagster_polars import PolarsParquetIOManager

                measured = side_by_side(
                    "polars frame, VersionedIOManager / PolarsParquetIOManager",
                    work / "polars",
                    url,
                    frame,
                    pl.DataFrame,
                    PolarsParquetIOManager(base_dir=str(work / "polars" / "theirs")),
                    "PolarsParquetIOManager",
                    args.rounds,
                    POLARS_TARGET,
                    out,
                )
                figures += [measured] if measured else []
        (work / "pandas" / "theirs").mkdir(parents=True)
        with catalog_url(args.database_url, work / "pandas") as url:
            measured = side_by_side(
                "pandas frame, VersionedIOManager / pyarrow by hand",
                work / "pandas",
                url,
                frame.to_pandas(),
                pd.DataFrame,
                HandWrittenPyarrowIOManager(base_dir=str(work / "pandas" / "theirs")),
                "pyarrow by hand",
                args.rounds,
                PANDAS_TARGET,
                out,
            )
            figures += [measured] if measured else []
    return finish(figures, started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
