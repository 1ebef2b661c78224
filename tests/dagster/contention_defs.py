"""Eight parallel assets on the DuckDB default, and a sensor on the tag they move."""

import time
from pathlib import Path

import dagster as dg

from orchestrator_dagster import OrchestratorResource, VersionedIOManager, tag_move_sensor

WIDTH = 8


def make_branch(index: int) -> dg.AssetsDefinition:
    @dg.asset(name=f"leaf_{index}")
    def leaf(context: dg.AssetExecutionContext) -> dict:
        return {"leaf": index, "run": context.run_id}

    return leaf


LEAVES = [make_branch(i) for i in range(WIDTH)]
orchestrator = OrchestratorResource()
job = dg.define_asset_job("contention", selection=dg.AssetSelection.all())
sensor = tag_move_sensor("main", job, minimum_interval_seconds=1)
defs = dg.Definitions(
    assets=LEAVES,
    jobs=[job],
    sensors=[sensor],
    resources={
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    },
)


def contention_job() -> dg.JobDefinition:
    return defs.resolve_job_def("contention")


def tick_forever(stop_file: str, ticks_file: str) -> None:
    """Evaluate the sensor every second, as the daemon would, until ``stop_file`` appears."""
    cursor = None
    ticks = 0
    with dg.instance_for_test() as instance:
        while not Path(stop_file).exists():
            with dg.build_sensor_context(
                cursor=cursor, instance=instance, resources={"orchestrator": orchestrator}
            ) as context:
                result = sensor(context)
            cursor = result.cursor
            ticks += 1
            Path(ticks_file).write_text(f"{ticks} {cursor}")
            time.sleep(1)
