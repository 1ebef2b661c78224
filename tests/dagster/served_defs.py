"""Jobs whose steps talk to a served catalog (``ORCHESTRATOR_SERVER_URL``, which the test
sets before the step processes are spawned): asset branches and a chain of ops. Each
branch and the op reading its input return which storage modules their process loaded."""

import sys

import dagster as dg

from orchestrator_dagster import OrchestratorResource, VersionedIOManager

WIDTH = 3
STORAGE_MODULES = (
    "sqlalchemy.orm",
    "core.bootstrap",
    "core.service",
    "core.repository",
    "core.storage.db",
    "duckdb",
    "psycopg",
)


def loaded_storage() -> list[str]:
    return sorted(module for module in STORAGE_MODULES if module in sys.modules)


@dg.asset
def numbers() -> list[int]:
    return list(range(10))


def make_branch(index: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"branch_{index}")
    def branch(numbers: list[int]) -> dict:
        return {"total": sum(numbers) + index, "loaded": loaded_storage()}

    return branch


BRANCHES = [make_branch(i) for i in range(WIDTH)]


@dg.op
def emit() -> bytes:
    return b"x" * (3 << 20)  # above LARGE_VALUE: sent and stored as a stream


@dg.op
def measure(blob: bytes) -> dict:
    return {"size": len(blob), "loaded": loaded_storage()}


@dg.job
def op_chain() -> None:
    measure(emit())


orchestrator = OrchestratorResource()
defs = dg.Definitions(
    assets=[numbers, *BRANCHES],
    jobs=[dg.define_asset_job("branches", selection=dg.AssetSelection.all()), op_chain],
    resources={
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    },
)


def branches_job() -> dg.JobDefinition:
    return defs.resolve_job_def("branches")


def op_chain_job() -> dg.JobDefinition:
    return defs.resolve_job_def("op_chain")
