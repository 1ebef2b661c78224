"""The 6-wide job that ``bench/dagster_overhead.py`` runs with the multiprocess executor.

Six independent assets (``branch_0`` ... ``branch_5``) and ``total``, which reads all six
through the IO manager. Every value carries the run id, so every run stores new content.

The step processes are spawned and import this module again, so the IO manager is chosen
here, at import time, from the environment they inherit:

* ``BENCH_IO_MANAGER``: ``versioned`` (``VersionedIOManager`` over an
  ``OrchestratorResource`` that reads ``ORCHESTRATOR_DATABASE_URL`` and
  ``ORCHESTRATOR_BLOB_ROOT``) or ``filesystem`` (Dagster's ``FilesystemIOManager``).
* ``BENCH_FS_BASE_DIR``: the ``FilesystemIOManager``'s base directory (default: the
  instance's storage directory).
* ``BENCH_PUBLISH``: the ``VersionedIOManager``'s ``publish`` (default ``output``).
* ``BENCH_STEP_STATS_DIR``: each step process writes ``<pid>.json`` there as it ends: its
  CPU seconds, how many full garbage collections it ran, whether it loaded the catalog's
  package and whether it opened the catalog itself (set by ``step_stats``).

Import it as ``bench.dagster_overhead_defs`` with the repository root on ``sys.path``.
"""

import contextlib
import gc
import json
import multiprocessing
import multiprocessing.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg

WIDTH = 6
JOB_NAME = "bench_parallel"
IO_MANAGER_ENV = "BENCH_IO_MANAGER"
FS_BASE_DIR_ENV = "BENCH_FS_BASE_DIR"
PUBLISH_ENV = "BENCH_PUBLISH"
STEP_STATS_ENV = "BENCH_STEP_STATS_DIR"
IO_MANAGER_KINDS = ("versioned", "filesystem")


def make_branch(index: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"branch_{index}", group_name="bench_parallel")
    def branch(context: dg.AssetExecutionContext) -> dict[str, Any]:
        return {
            "branch": index,
            "run": context.run_id,
            "values": list(range(index * 10, index * 10 + 10)),
        }

    return branch


BRANCHES = [make_branch(index) for index in range(WIDTH)]


@dg.asset(group_name="bench_parallel")
def total(
    context: dg.AssetExecutionContext,
    branch_0: dict[str, Any],
    branch_1: dict[str, Any],
    branch_2: dict[str, Any],
    branch_3: dict[str, Any],
    branch_4: dict[str, Any],
    branch_5: dict[str, Any],
) -> dict[str, Any]:
    branches = [branch_0, branch_1, branch_2, branch_3, branch_4, branch_5]
    if any(branch["run"] != context.run_id for branch in branches):
        raise RuntimeError("total read a branch value from another run")
    return {"run": context.run_id, "total": sum(sum(branch["values"]) for branch in branches)}


def make_io_manager(kind: str) -> dg.ConfigurableIOManagerFactory:
    """The IO manager named ``kind`` (one of ``IO_MANAGER_KINDS``)."""
    if kind == "versioned":
        # imported here: a step process of the FilesystemIOManager side does not load the
        # catalog's package (its import costs about as much as a step's catalog work)
        from orchestrator_dagster import OrchestratorResource, VersionedIOManager

        return VersionedIOManager(
            orchestrator=OrchestratorResource(), publish=os.environ.get(PUBLISH_ENV, "output")
        )
    if kind == "filesystem":
        # Unset: the instance's storage directory (Dagster's default).
        return dg.FilesystemIOManager(base_dir=os.environ.get(FS_BASE_DIR_ENV))
    raise RuntimeError(f"{IO_MANAGER_ENV} must be one of {IO_MANAGER_KINDS}, not {kind!r}")


def record_step_stats(directory: Path) -> None:
    """As this step process ends, write its CPU seconds, the full garbage collections it
    ran (since it started), whether it loaded the catalog's package and whether it
    opened the catalog itself (``core.bootstrap``) to ``directory/<pid>.json``."""

    def write() -> None:
        stats = {
            "cpu": time.process_time(),
            "full_collections": gc.get_stats()[2]["collections"],
            "catalog_loaded": "core" in sys.modules or "orchestrator_dagster" in sys.modules,
            "storage_loaded": "core.bootstrap" in sys.modules,
        }
        (directory / f"{os.getpid()}.json").write_text(json.dumps(stats))

    # a step process ends through multiprocessing, which runs its finalizers, not atexit
    multiprocessing.util.Finalize(None, write, exitpriority=0)


@contextlib.contextmanager
def step_stats(parent: str) -> Iterator[list[dict[str, Any]]]:
    """The step processes started in the block record their stats (``record_step_stats``,
    in a folder under ``parent``); the list yielded holds them, a dict per process, once
    the block ends."""
    directory = Path(tempfile.mkdtemp(prefix="step-stats-", dir=parent))
    os.environ[STEP_STATS_ENV] = str(directory)  # the step processes inherit it
    stats: list[dict[str, Any]] = []
    try:
        yield stats
        stats.extend(json.loads(path.read_text()) for path in sorted(directory.glob("*.json")))
    finally:
        del os.environ[STEP_STATS_ENV]
        shutil.rmtree(directory, ignore_errors=True)


if (stats_dir := os.environ.get(STEP_STATS_ENV)) and multiprocessing.parent_process() is not None:
    record_step_stats(Path(stats_dir))

IO_MANAGER_KIND = os.environ.get(IO_MANAGER_ENV, "filesystem")
defs = dg.Definitions(
    assets=[*BRANCHES, total],
    jobs=[dg.define_asset_job(JOB_NAME, selection=dg.AssetSelection.all())],
    resources={"io_manager": make_io_manager(IO_MANAGER_KIND)},
)


def parallel_job() -> dg.JobDefinition:
    """The job, for ``dagster.reconstructable``."""
    return defs.resolve_job_def(JOB_NAME)
