"""Jobs for re-execution tests (``reconstructable`` needs them at module level).

``ORCHESTRATOR_TEST_FAIL`` names a file: while it exists, the second step of each job
fails, so that a re-execution from failure has something to re-run.
"""

import os

import dagster as dg

from orchestrator_dagster import OrchestratorResource, VersionedIOManager

orchestrator = OrchestratorResource()  # the catalog: ORCHESTRATOR_DATABASE_URL / _BLOB_ROOT
resources = {
    "orchestrator": orchestrator,
    "io_manager": VersionedIOManager(orchestrator=orchestrator),
}


def _failing() -> bool:
    return os.path.exists(os.environ["ORCHESTRATOR_TEST_FAIL"])


@dg.op
def load() -> str:
    return os.environ["ORCHESTRATOR_TEST_VALUE"]


@dg.op
def use(value: str) -> str:
    if _failing():
        raise RuntimeError("failing on purpose")
    return f"used {value}"


@dg.job(resource_defs=resources)
def op_job() -> None:
    use(load())


@dg.asset
def up() -> str:
    return os.environ["ORCHESTRATOR_TEST_VALUE"]


@dg.asset
def down(up: str) -> str:
    if _failing():
        raise RuntimeError("failing on purpose")
    return f"down saw {up}"


defs = dg.Definitions(
    assets=[up, down], jobs=[dg.define_asset_job("asset_job", [up, down])], resources=resources
)


def get_op_job() -> dg.JobDefinition:
    return op_job


def get_asset_job() -> dg.JobDefinition:
    return defs.resolve_job_def("asset_job")
