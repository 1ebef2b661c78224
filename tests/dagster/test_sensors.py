"""tag_move_sensor and run_snapshot_sensor over real catalog moves and real runs."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

import core
from orchestrator_dagster import (
    OrchestratorResource,
    VersionedIOManager,
    run_snapshot_sensor,
    sensors,
    tag_move_sensor,
)


@dg.asset
def source() -> int:
    return 1


@dg.asset
def sink(source: int) -> int:
    return source + 1


@dg.asset
def broken() -> int:
    raise RuntimeError("nope")


downstream = dg.define_asset_job("downstream", selection=[sink])


@pytest.fixture
def orchestrator(database_url: str, blob_root: Path) -> OrchestratorResource:
    return OrchestratorResource(database_url=database_url, blob_root=str(blob_root))


def tick(
    sensor: dg.SensorDefinition,
    orchestrator: OrchestratorResource,
    instance: dg.DagsterInstance,
    cursor: str | None,
) -> dg.SensorResult:
    with dg.build_sensor_context(
        cursor=cursor, resources={"orchestrator": orchestrator}, instance=instance
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def commit(catalog: core.Services, node: str, content: bytes) -> core.OutputCommit:
    return catalog.assets.commit_output(
        "writer", "main", node, content, media_type="application/json"
    )


def test_one_run_request_per_move(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    sensor = tag_move_sensor("main", downstream, minimum_interval_seconds=5)
    assert sensor.name == "main_tag_move_sensor"
    assert sensor.minimum_interval_seconds == 5
    empty = tick(sensor, orchestrator, instance, None)
    assert empty.run_requests == [] and empty.skip_reason is not None

    commit(catalog, "a", b"1")
    second = commit(catalog, "a", b"2")
    first_tick = tick(sensor, orchestrator, instance, None)
    (request,) = first_tick.run_requests  # no cursor: the latest move only
    history = catalog.tags.get_history("main")
    assert request.run_key == f"main:{history[-1].id}"
    assert request.tags["orchestrator/version_hash"] == second.version_hash
    assert request.tags["orchestrator/revision"] == "2"
    assert first_tick.cursor == str(history[-1].id)

    commit(catalog, "a", b"3")
    commit(catalog, "b", b"4")
    later = tick(sensor, orchestrator, instance, first_tick.cursor)
    history = catalog.tags.get_history("main")
    assert [r.run_key for r in later.run_requests] == [f"main:{m.id}" for m in history[-2:]]
    assert later.cursor == str(history[-1].id)
    assert tick(sensor, orchestrator, instance, later.cursor).run_requests == []


def test_a_requested_run_reads_the_version_its_move_published(
    orchestrator: OrchestratorResource,
    resources: dict,
    instance: dg.DagsterInstance,
    catalog: core.Services,
) -> None:
    sensor = tag_move_sensor("main", downstream)
    commit(catalog, "source", b"10")
    (request,) = tick(sensor, orchestrator, instance, None).run_requests
    commit(catalog, "source", b"20")  # main moves on before the requested run starts
    result = dg.materialize(
        [source, sink], selection=[sink], resources=resources, instance=instance, tags=request.tags
    )
    assert result.output_for_node("sink") == 11  # source as of the move, not main's 20
    run = catalog.runs.get_run(result.run_id)
    assert (
        run.base_id
        == catalog.artifacts.get_by_version_hash(request.tags["orchestrator/version_hash"]).id
    )
    other = dg.materialize(
        [source, sink],
        selection=[sink],
        resources=resources,
        instance=instance,
        tags={**request.tags, "orchestrator/tag": "prod"},  # another tag's move: not pinned
    )
    assert other.output_for_node("sink") == 21


def test_asset_keys_filter_moves(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    sensor = tag_move_sensor("team/main", downstream, name="watch_b", asset_keys=["b"])
    assert sensor.name == "watch_b"
    catalog.assets.commit_output("w", "team/main", "a", b"1", media_type="application/json")
    cursor = tick(sensor, orchestrator, instance, "0").cursor
    catalog.assets.commit_output("w", "team/main", "b", b"1", media_type="application/json")
    catalog.assets.commit_output("w", "team/main", "a", b"2", media_type="application/json")
    catalog.assets.commit_output("w", "team/main", "b", b"2", media_type="application/json")
    result = tick(sensor, orchestrator, instance, cursor)
    history = catalog.tags.get_history("team/main")
    assert [r.run_key for r in result.run_requests] == [
        f"team/main:{history[1].id}",
        f"team/main:{history[3].id}",
    ]
    assert result.cursor == str(history[-1].id)


def test_invalid_tag_is_rejected_at_definition_time() -> None:
    with pytest.raises(core.ValidationError, match="'a//b'"):
        tag_move_sensor("a//b", downstream)


def test_run_snapshot_sensor_records_final_status(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    resources = {
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    }
    ok = dg.materialize([source], resources=resources, instance=instance)
    failed = dg.materialize([broken], resources=resources, instance=instance, raise_on_error=False)
    unknown = dg.materialize(
        [source], resources={"orchestrator": orchestrator}, instance=instance
    )  # default IO manager: the catalog never saw it
    assert catalog.runs.get_run(ok.run_id).status == "started"

    result = tick(run_snapshot_sensor, orchestrator, instance, None)
    assert catalog.runs.get_run(ok.run_id).status == "success"
    assert catalog.runs.get_run(failed.run_id).status == "failure"
    for run in (ok, failed):  # when the run ended in Dagster, not when the sensor ticked
        record = instance.get_run_record_by_id(run.run_id)
        assert record is not None and record.end_time is not None
        finished_at = catalog.runs.get_run(run.run_id).finished_at
        assert finished_at == datetime.fromtimestamp(record.end_time, UTC)
    with pytest.raises(core.NotFoundError):
        catalog.runs.get_run(unknown.run_id)
    assert result.cursor is not None

    again = tick(run_snapshot_sensor, orchestrator, instance, result.cursor)
    assert again.cursor == result.cursor
    assert catalog.runs.get_run(ok.run_id).status == "success"


def test_run_snapshot_sensor_gets_past_more_runs_than_a_page_finishing_together(
    orchestrator: OrchestratorResource,
    instance: dg.DagsterInstance,
    catalog: core.Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sensors, "RUNS_PER_TICK", 2)
    run_ids = [f"run-{i}" for i in range(5)]
    for run_id in run_ids:  # five runs finishing within the cursor's overlap
        catalog.runs.create_run(run_id)
        instance.add_run(
            dg.DagsterRun(job_name="job", run_id=run_id, status=dg.DagsterRunStatus.SUCCESS)
        )
    cursors: list[float] = []
    cursor = None
    for _ in range(4):
        cursor = tick(run_snapshot_sensor, orchestrator, instance, cursor).cursor
        assert cursor is not None
        cursors.append(float(cursor))
    assert [catalog.runs.get_run(run_id).status for run_id in run_ids] == ["success"] * 5
    assert cursors == sorted(cursors)
