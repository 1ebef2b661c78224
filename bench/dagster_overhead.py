"""What ``VersionedIOManager`` costs a Dagster run, compared with ``FilesystemIOManager``.

Measures two figures against targets from the performance issue:

1. A 50-asset chain (``a0 -> a1 -> ... -> a49``; each asset reads its upstream value, a
   small dict, and returns a changed one) materialised in process with
   ``dagster.materialize``: wall clock with ``VersionedIOManager`` (side A) over wall clock
   with Dagster's ``FilesystemIOManager`` (side B). Target <= 1.15.
2. A 6-wide job (six independent assets plus ``total``, which reads all six; see
   ``bench/dagster_overhead_defs.py``) run with ``dagster.execute_job`` on the default
   multiprocess executor (every step in its own spawned process, at most as many at a
   time as there are CPUs), side A over side B as above. Target <= 1.15. How side A's
   steps reach the catalog is ``--steps``: ``local`` (the default configuration: they
   share a local server, which the warm-up run starts; the first run's figure, server
   start included, is printed as ``cold``), ``direct`` (each step opens the catalog,
   ``ORCHESTRATOR_LOCAL_SERVER=off``) or ``served`` (an ``orchestrator serve`` started
   before the rounds, ``server_url``). The chain runs in one process, so it is measured
   with ``local`` only.

Every value carries the run id, so every run stores new content (``VersionedIOManager``
does nothing for a value equal to the tag's current one; side A's runs are checked for
that). Both sides run against the same kind of instance (``dagster.instance_for_test``
with a directory under the work directory, one for each figure) with console logging at
WARNING. A figure's runs are interleaved, A and B alternating which goes first in each
round, after one unrecorded warm-up run of each side; the figure is median(A) /
median(B) of the wall clock of the ``materialize``/``execute_job`` call. Each run of the
multiprocess job happens in a fresh Python process (the IO manager is chosen when the
job's module is imported, from ``BENCH_IO_MANAGER``); only its ``execute_job`` call is
timed. It takes 6 rounds a side by default: a run (about 9 s of step processes on 2 CPUs)
varies by 10% from one to the next, and with 4 the figure moved by 0.05 between full
runs of ``bench/run_all.py``.

Side A's catalog is a DuckDB file in a temporary work directory (under ``--dir`` if given,
else the system temp dir, removed at the end), blobs next to it. ``--database-url
postgresql+psycopg://...`` runs side A on Postgres instead, in fresh schemas that are
dropped at the end (a ``duckdb:///path.duckdb`` URL: files ``path-chain.duckdb`` and
``path-parallel.duckdb``).

Run from the project root::

    .venv/bin/python bench/dagster_overhead.py
    .venv/bin/python bench/dagster_overhead.py --rounds 9 --mp-rounds 6 --json
    .venv/bin/python bench/dagster_overhead.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/dagster_overhead.py --profile   # cProfile one side-A chain run

Output: one line per figure, ``<figure name>: <value> (target <= X) OK|MISS``, followed by
indented ``raw`` lines with the medians in seconds (wall clock, then CPU time: wall minus
CPU is time spent waiting, on fsync, locks or other steps; for the multiprocess job, also
a step process's CPU and its full garbage collections). With ``--json`` the figures
are printed to stdout as a JSON list of ``{"name", "value", "target", "unit", "ok"}``
objects and the human-readable report goes to stderr. The exit status is 0 whatever the
figures are.
"""

import argparse
import contextlib
import cProfile
import gc
import importlib
import io
import json
import os
import pstats
import re
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple, TextIO
from unittest import mock

import dagster as dg
from figures import (
    Figure,
    catalog_url,
    child_command,
    figure,
    finish,
    format_figure,
    interleave,
    redact,
    work_directory,
)
from sqlalchemy.engine import make_url

from core import local_server
from orchestrator_dagster import OrchestratorResource, VersionedIOManager, publish_run

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFS_MODULE = "bench.dagster_overhead_defs"
CHAIN_LENGTH = 50
TARGET = 1.15
QUIET_RUN_CONFIG: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class Timing(NamedTuple):
    """One run: wall-clock seconds, and CPU seconds of every process that took part; for a
    multiprocess run, also its step processes' median CPU seconds and mean number of full
    garbage collections, and how many of them opened the catalog themselves."""

    wall: float
    cpu: float
    step_cpu: float | None = None
    step_collections: float | None = None
    opened: int = 0


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def format_raw(label: str, timings: list[Timing]) -> str:
    walls = [t.wall for t in timings]
    return (
        f"  raw {label} median: {statistics.median(walls):.3f} s over {len(walls)} rounds: "
        + ", ".join(f"{w:.3f}" for w in walls)
    )


def format_cpu(versioned: list[Timing], filesystem: list[Timing], scope: str) -> str:
    return (
        f"  raw CPU ({scope}) medians: VersionedIOManager "
        f"{statistics.median(t.cpu for t in versioned):.3f} s, FilesystemIOManager "
        f"{statistics.median(t.cpu for t in filesystem):.3f} s"
    )


def format_steps(versioned: list[Timing], filesystem: list[Timing]) -> str:
    """Each side's step processes: CPU and full garbage collections (a full collection of
    a heap holding Dagster costs about 100 ms, so one more of them a step shows here)."""

    def side(timings: list[Timing]) -> str:
        cpu = statistics.median(t.step_cpu or 0.0 for t in timings)
        collections = statistics.mean(t.step_collections or 0.0 for t in timings)
        return f"CPU {cpu:.3f} s, {collections:.2f} full collections"

    return (
        f"  raw a step process (medians over the rounds): VersionedIOManager {side(versioned)}; "
        f"FilesystemIOManager {side(filesystem)}"
    )


def format_paired(versioned: list[Timing], filesystem: list[Timing]) -> str:
    """The ratio of each round's two runs: its median cancels a machine that changes
    speed between rounds, which the figure (a ratio of medians) does not. Printed beside
    the figure, to weigh the two over many runs."""
    ratios = sorted(a.wall / b.wall for a, b in zip(versioned, filesystem, strict=True))
    return (
        f"  raw per-round ratios: median {statistics.median(ratios):.3f}, "
        f"from {ratios[0]:.3f} to {ratios[-1]:.3f}"
    )


def wall_ratio(versioned: list[Timing], filesystem: list[Timing]) -> float:
    return statistics.median(t.wall for t in versioned) / statistics.median(
        t.wall for t in filesystem
    )


def quiet_warnings() -> None:
    """Hide the deprecation/beta warnings Dagster and duckdb_engine print on every run."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def ensure_repo_root_on_path() -> None:
    """Make ``bench.dagster_overhead_defs`` importable here and in spawned step processes.

    Spawned children get the parent's ``sys.path``; ``PYTHONPATH`` covers processes
    started any other way.
    """
    root = str(REPO_ROOT)
    if root not in sys.path:
        sys.path.insert(0, root)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


# --- catalogs ---------------------------------------------------------------------------


class Catalogs:
    """Hands out one fresh catalog database per figure; drops Postgres schemas at the end."""

    def __init__(self, work: Path, database_url: str | None) -> None:
        self.work = work
        self.database_url = database_url
        self.backend = make_url(database_url).get_backend_name() if database_url else "duckdb"
        self._schemas = contextlib.ExitStack()

    def new(self, name: str) -> str:
        if self.database_url is None or self.backend == "postgresql":
            (self.work / name).mkdir(parents=True, exist_ok=True)
            return self._schemas.enter_context(catalog_url(self.database_url, self.work / name))
        url = make_url(self.database_url)  # a DuckDB file: one per figure next to it
        path = Path(url.database or "catalog.duckdb")
        return url.set(database=str(path.with_stem(f"{path.stem}-{name}"))).render_as_string(
            hide_password=False
        )

    def close(self) -> None:
        self._schemas.close()


# --- figure 1: the 50-asset chain, in process ----------------------------------------------


def make_link(index: int) -> dg.AssetsDefinition:
    """Asset ``a<index>``: reads ``a<index - 1>`` (if any) and returns a changed value."""
    if index == 0:

        @dg.asset(name="a0", group_name="bench_chain")
        def first(context: dg.AssetExecutionContext) -> dict[str, Any]:
            return {"step": 0, "run": context.run_id, "values": list(range(16))}

        return first

    @dg.asset(
        name=f"a{index}",
        group_name="bench_chain",
        ins={"upstream": dg.AssetIn(key=f"a{index - 1}")},
    )
    def link(context: dg.AssetExecutionContext, upstream: dict[str, Any]) -> dict[str, Any]:
        if upstream["run"] != context.run_id or upstream["step"] != index - 1:
            raise RuntimeError(f"a{index} read a stale value of a{index - 1}")
        return {
            "step": index,
            "run": context.run_id,
            "values": [value + 1 for value in upstream["values"]],
        }

    return link


def make_chain(length: int = CHAIN_LENGTH) -> list[dg.AssetsDefinition]:
    return [make_link(index) for index in range(length)]


def publish_mode() -> str:
    """Side A's ``publish`` (``--publish``, passed on to the step processes)."""
    return os.environ.get("BENCH_PUBLISH", "output")


def versioned_io_manager(database_url: str, blob_root: Path) -> VersionedIOManager:
    return VersionedIOManager(
        orchestrator=OrchestratorResource(database_url=database_url, blob_root=str(blob_root)),
        publish=publish_mode(),
    )


def publish_if_staged(
    io_manager: dg.ConfigurableIOManagerFactory, run_id: str, instance: dg.DagsterInstance
) -> None:
    """With ``--publish run``: publish the run as run_snapshot_sensor would (timed too)."""
    if not isinstance(io_manager, VersionedIOManager) or publish_mode() != "run":
        return
    recorded = publish_run(run_id, instance=instance, orchestrator=io_manager.orchestrator)
    if recorded is None or recorded.outcome is None or recorded.outcome.state.value != "published":
        raise RuntimeError(f"run {run_id} was not published: {recorded}")


def materialize_chain(
    assets: list[dg.AssetsDefinition],
    io_manager: dg.ConfigurableIOManagerFactory,
    instance: dg.DagsterInstance,
    *,
    expect_new_versions: bool,
) -> Timing:
    """How long one ``materialize`` of the chain takes; checks the run."""
    gc.collect()
    cpu = cpu_seconds()
    start = time.perf_counter()
    result = dg.materialize(
        assets, instance=instance, resources={"io_manager": io_manager}, run_config=QUIET_RUN_CONFIG
    )
    publish_if_staged(io_manager, result.run_id, instance)
    timing = Timing(time.perf_counter() - start, cpu_seconds() - cpu)
    if not result.success:
        raise RuntimeError(f"chain run {result.run_id} failed")
    events = result.get_asset_materialization_events()
    if len(events) != len(assets):
        raise RuntimeError(f"chain run materialised {len(events)} assets, not {len(assets)}")
    if expect_new_versions:
        for event in events:
            materialization = event.step_materialization_data.materialization
            unchanged = materialization.metadata.get("orchestrator/unchanged")
            if unchanged is None or unchanged.value:
                raise RuntimeError(f"{materialization.asset_key} stored no new version")
    return timing


def measure_chain(catalogs: Catalogs, work: Path, rounds: int) -> tuple[Figure, list[str]]:
    database_url = catalogs.new("chain")
    versioned = versioned_io_manager(database_url, work / "chain" / "blobs")
    filesystem = dg.FilesystemIOManager(base_dir=str(work / "chain" / "fs"))
    assets = make_chain()
    home = work / "chain" / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        versioned_times, filesystem_times = interleave(
            rounds,
            lambda: materialize_chain(assets, versioned, instance, expect_new_versions=True),
            lambda: materialize_chain(assets, filesystem, instance, expect_new_versions=False),
        )
    ratio = wall_ratio(versioned_times, filesystem_times)
    fig = figure(
        f"in-process {CHAIN_LENGTH}-asset chain, VersionedIOManager ({catalogs.backend}"
        f"{', publish=run' if publish_mode() == 'run' else ''}) / FilesystemIOManager",
        ratio,
        TARGET,
        "ratio",
    )
    versioned_ms = statistics.median(t.wall for t in versioned_times) / CHAIN_LENGTH * 1000
    filesystem_ms = statistics.median(t.wall for t in filesystem_times) / CHAIN_LENGTH * 1000
    raw = [
        format_raw("VersionedIOManager", versioned_times),
        format_raw("FilesystemIOManager", filesystem_times),
        format_cpu(versioned_times, filesystem_times, "this process"),
        format_paired(versioned_times, filesystem_times),
        f"  raw per asset (wall): VersionedIOManager {versioned_ms:.1f} ms, "
        f"FilesystemIOManager {filesystem_ms:.1f} ms: {versioned_ms - filesystem_ms:.1f} ms "
        f"more, where the target allows {filesystem_ms * (TARGET - 1):.1f} ms",
    ]
    return fig, raw


# --- figure 2: the 6-wide job, multiprocess ------------------------------------------------


def mp_child(dagster_home: str) -> None:
    """In a fresh process: run the 6-wide job once and print its timing as JSON."""
    quiet_warnings()
    ensure_repo_root_on_path()
    defs_module = importlib.import_module(DEFS_MODULE)
    job = dg.reconstructable(defs_module.parallel_job)
    job.get_definition()  # import and build the job before the clock starts
    with (
        dg.instance_for_test(temp_dir=dagster_home) as instance,
        defs_module.step_stats(dagster_home) as stats,
    ):
        gc.collect()
        cpu = cpu_seconds()
        start = time.perf_counter()
        result = dg.execute_job(job, instance=instance, run_config=QUIET_RUN_CONFIG)
        if result.success and defs_module.IO_MANAGER_KIND == "versioned":
            publish_if_staged(defs_module.make_io_manager("versioned"), result.run_id, instance)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
    steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    pids = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
    report = {
        "seconds": seconds,
        "cpu": cpu,
        "success": result.success,
        "run_id": result.run_id,
        "steps": len(steps),
        "processes": len(pids),
        "io_manager": defs_module.IO_MANAGER_KIND,
        "step_cpu": statistics.median(step["cpu"] for step in stats) if stats else None,
        "step_collections": (
            statistics.mean(step["full_collections"] for step in stats) if stats else None
        ),
        "recorded_steps": len(stats),
        "catalog_loaded": sum(step["catalog_loaded"] for step in stats),
        "storage_loaded": sum(step["storage_loaded"] for step in stats),
    }
    print(json.dumps(report))


def run_mp_child(kind: str, env: dict[str, str], dagster_home: Path) -> Timing:
    """How long one multiprocess run takes with IO manager ``kind``, timed in a child."""
    defs_module = importlib.import_module(DEFS_MODULE)
    child_env = {**env, defs_module.IO_MANAGER_ENV: kind}
    completed = subprocess.run(
        child_command(__file__, f"mp_child({str(dagster_home)!r})"),
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(completed.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = None
    expected_steps = defs_module.WIDTH + 1
    if (
        completed.returncode != 0
        or report is None
        or not report["success"]
        or report["io_manager"] != kind
        or report["steps"] != expected_steps
        or report["processes"] != expected_steps
        or report["recorded_steps"] != expected_steps
        or (kind == "filesystem" and report["catalog_loaded"])  # the baseline must not pay it
        or (kind == "versioned" and "ORCHESTRATOR_SERVER_URL" in env and report["storage_loaded"])
    ):
        raise RuntimeError(
            f"multiprocess run with {kind} failed (exit {completed.returncode}, report "
            f"{report}):\n{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}"
        )
    return Timing(
        float(report["seconds"]),
        float(report["cpu"]),
        report["step_cpu"],
        report["step_collections"],
        report["storage_loaded"] if kind == "versioned" else 0,
    )


STEP_MODES = ("local", "direct", "served")


def measure_multiprocess(
    catalogs: Catalogs, work: Path, rounds: int, steps: str = "local"
) -> tuple[Figure, list[str]]:
    """The 6-wide job, side A's steps reaching the catalog as ``steps`` says (one of
    ``STEP_MODES``, see the module doc)."""
    ensure_repo_root_on_path()
    defs_module = importlib.import_module(DEFS_MODULE)
    runtime = work / "parallel" / "runtime"  # the local server's socket: private, short
    runtime.mkdir(mode=0o700, parents=True)
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": catalogs.new("parallel"),
        "ORCHESTRATOR_BLOB_ROOT": str(work / "parallel" / "blobs"),
        local_server.LOCAL_SERVER_ENV: "on" if steps == "local" else "off",
        local_server.RUNTIME_DIR_ENV: str(runtime),
        defs_module.FS_BASE_DIR_ENV: str(work / "parallel" / "fs"),
        "PYTHONWARNINGS": "ignore",
    }
    home = work / "parallel" / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    raw: list[str] = []
    with contextlib.ExitStack() as stack:
        if steps == "served":
            from tests.http.server import serve  # the tests' `orchestrator serve` helper

            database, blobs = env["ORCHESTRATOR_DATABASE_URL"], env["ORCHESTRATOR_BLOB_ROOT"]
            log = work / "parallel" / "serve.log"
            env["ORCHESTRATOR_SERVER_URL"] = stack.enter_context(serve(database, Path(blobs), log))
        if steps == "local":
            stack.callback(stop_local_server, env)
            cold = run_mp_child("versioned", env, home), run_mp_child("filesystem", env, home)
            raw.append(
                f"  raw cold (the first run, which starts the local server): "
                f"{cold[0].wall / cold[1].wall:.3f} ({cold[0].wall:.3f} s / "
                f"{cold[1].wall:.3f} s); {cold[0].opened} step processes opened the catalog"
            )
        versioned_times, filesystem_times = interleave(
            rounds,
            lambda: run_mp_child("versioned", env, home),
            lambda: run_mp_child("filesystem", env, home),
        )
    opened = [t.opened for t in versioned_times]
    if steps != "direct" and any(opened):
        raise RuntimeError(
            f"side A's step processes opened the catalog themselves in a measured round "
            f"({opened}): the {steps} server did not serve them"
        )
    ratio = wall_ratio(versioned_times, filesystem_times)
    fig = figure(
        f"multiprocess {defs_module.WIDTH}-wide job, VersionedIOManager "
        f"({catalogs.backend}{', publish=run' if publish_mode() == 'run' else ''}, "
        f"{steps} steps) / FilesystemIOManager",
        ratio,
        TARGET,
        "ratio",
    )
    raw += [
        format_raw("VersionedIOManager", versioned_times),
        format_raw("FilesystemIOManager", filesystem_times),
        format_cpu(versioned_times, filesystem_times, "run process + step processes"),
        format_steps(versioned_times, filesystem_times),
        format_paired(versioned_times, filesystem_times),
        f"  raw executor: multiprocess, max_concurrent = {os.cpu_count()} (CPUs), "
        f"{defs_module.WIDTH + 1} step processes per run",
    ]
    return fig, raw


def stop_local_server(env: dict[str, str]) -> None:
    """Stop the local server the step processes started (they ran with ``env``, here)."""
    with mock.patch.dict(os.environ, env, clear=True):
        server = local_server.server_for()
    if server is not None:
        server.stop()


# --- profile ------------------------------------------------------------------------------


def profile_chain(catalogs: Catalogs, work: Path, out: TextIO, lines: int = 30) -> None:
    """cProfile one side-A chain run (after a warm-up), cumulative, project/SQL code only."""
    database_url = catalogs.new("profile")
    versioned = versioned_io_manager(database_url, work / "profile" / "blobs")
    assets = make_chain()
    home = work / "profile" / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        materialize_chain(assets, versioned, instance, expect_new_versions=True)
        profiler = cProfile.Profile()
        profiler.enable()
        timing = materialize_chain(assets, versioned, instance, expect_new_versions=True)
        profiler.disable()
    buffer = io.StringIO()
    stats = pstats.Stats(profiler, stream=buffer)
    stats.sort_stats("cumulative")
    stats.print_stats(
        rf"{re.escape(str(REPO_ROOT))}/orchestrator_dagster/(io_manager|resource)\.py"
    )
    restriction = rf"{re.escape(str(REPO_ROOT))}/(core|orchestrator_dagster)/|/sqlalchemy/|/duckdb"
    stats.print_stats(restriction, lines)
    stats.sort_stats("tottime")
    stats.print_stats(lines // 2)
    print(
        f"profile of one in-process {CHAIN_LENGTH}-asset chain run with VersionedIOManager "
        f"({catalogs.backend}): {timing.wall:.3f} s under cProfile",
        file=out,
    )
    print(buffer.getvalue().replace(str(REPO_ROOT) + "/", ""), file=out)


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="parent of the temporary work directory")
    parser.add_argument(
        "--database-url",
        help="side A's catalog (default: a DuckDB file in the work directory); a Postgres "
        "URL gets fresh schemas, dropped at the end",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--publish",
        choices=("output", "run"),
        default="output",
        help='side A\'s publish mode; "run" publishes each run after it ends, inside the '
        "timing, as run_snapshot_sensor would",
    )
    parser.add_argument(
        "--rounds", type=int, default=9, help="in-process chain rounds per side (default 9)"
    )
    parser.add_argument(
        "--mp-rounds", type=int, default=6, help="multiprocess rounds per side (default 6)"
    )
    parser.add_argument(
        "--steps",
        choices=STEP_MODES,
        default="local",
        help="how side A's step processes reach the catalog: a shared local server (the "
        "default configuration), each its own (direct; the multiprocess job alone) or an "
        "`orchestrator serve` started before the rounds (served; the multiprocess job alone)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of measuring, cProfile one side-A in-process chain run",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.mp_rounds < 1:
        parser.error("--rounds and --mp-rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["BENCH_PUBLISH"] = args.publish  # the step processes inherit it
    quiet_warnings()
    out = sys.stderr if args.json else sys.stdout
    started = time.perf_counter()
    figures: list[Figure] = []
    with work_directory("bench-dagster-", args.dir) as work:
        catalogs = Catalogs(work, args.database_url)
        try:
            if args.profile:
                profile_chain(catalogs, work, out)
                return 0
            measures = [lambda: measure_multiprocess(catalogs, work, args.mp_rounds, args.steps)]
            if args.steps == "local":
                measures.insert(0, lambda: measure_chain(catalogs, work, args.rounds))
            for measure in measures:
                fig, raw = measure()
                figures.append(fig)
                print(format_figure(fig), file=out)
                for line in raw:
                    print(line, file=out)
                out.flush()
        finally:
            catalogs.close()
        side_a = (
            redact(args.database_url)
            if args.database_url
            else f"duckdb:///{work}/{{chain,parallel}}/catalog.duckdb"
        )
        print(f"  raw work dir: {work}, side A database: {side_a}", file=out)
    return finish(figures, started, out, args.json)


if __name__ == "__main__":
    sys.exit(main())
