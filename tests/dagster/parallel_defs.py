"""A job of parallel assets for multi-process runs (each step in its own process).

The catalog comes from ``ORCHESTRATOR_DATABASE_URL`` / ``ORCHESTRATOR_BLOB_ROOT``, which
the test sets before the step processes are spawned.
"""

import time

import dagster as dg

from orchestrator_dagster import OrchestratorResource, VersionedIOManager

WIDTH = 6


def make_branch(index: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"branch_{index}", group_name="parallel")
    def branch() -> dict:
        time.sleep(0.2)
        return {"branch": index, "values": list(range(index * 10, index * 10 + 10))}

    return branch


BRANCHES = [make_branch(i) for i in range(WIDTH)]


@dg.asset(group_name="parallel", deps=[b.key for b in BRANCHES])
def total(context: dg.AssetExecutionContext, orchestrator: OrchestratorResource) -> int:
    nodes = orchestrator.catalog.workflows.get_workflow_by_tag("main")["nodes"]
    return sum(1 for name in nodes if name.startswith("branch_"))


orchestrator = OrchestratorResource()
defs = dg.Definitions(
    assets=[*BRANCHES, total],
    jobs=[dg.define_asset_job("parallel", selection=dg.AssetSelection.all())],
    resources={
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    },
)


def parallel_job() -> dg.JobDefinition:
    return defs.resolve_job_def("parallel")
