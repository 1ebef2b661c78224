"""``publish="run"`` in real Dagster runs: outputs stage, and the run lands on ``main`` in
one move only when it and its checks pass (run_snapshot_sensor, publish_run)."""

from pathlib import Path

import dagster as dg
import pytest

import core
from orchestrator_dagster import (
    OrchestratorResource,
    VersionedIOManager,
    publish_run,
    run_snapshot_sensor,
    tag_move_sensor,
)


@dg.asset
def orders() -> list[int]:
    return [1, 2, 3]


@dg.asset
def revenue(orders: list[int]) -> int:
    return sum(orders)


@dg.asset_check(asset=revenue)
def revenue_positive(revenue: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=revenue > 0)


@dg.asset_check(asset=revenue)
def revenue_is_huge(revenue: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR)


@dg.asset_check(asset=revenue)
def revenue_is_round(revenue: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=orders, blocking=True)
def orders_are_few(orders: list[int]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False)


@pytest.fixture
def orchestrator(database_url: str, blob_root: Path) -> OrchestratorResource:
    return OrchestratorResource(database_url=database_url, blob_root=str(blob_root))


def staged_resources(orchestrator: OrchestratorResource) -> dict[str, object]:
    return {
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator, publish="run"),
    }


def run(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, *assets: object
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        list(assets),  # type: ignore[arg-type]
        resources=staged_resources(orchestrator),
        instance=instance,
        raise_on_error=False,
    )


def staged_nodes(catalog: core.Services, run_id: str) -> set[str]:
    return set(catalog.artifacts.resolve(catalog.refs.resolve(f"run:{run_id}").id)["nodes"])


def state(catalog: core.Services, run_id: str) -> core.OutcomeState | None:
    outcome = catalog.runs.get_run(run_id).outcome
    return None if outcome is None else outcome.state


def test_a_passing_run_lands_on_main_in_one_move(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = run(orchestrator, instance, orders, revenue, revenue_positive, revenue_is_round)
    assert result.success
    assert catalog.tags.list_tags() == []  # staged: main does not exist yet
    assert staged_nodes(catalog, result.run_id) == {"orders", "revenue"}
    recorded = publish_run(result.run_id, instance=instance, orchestrator=orchestrator)
    assert recorded is not None and recorded.outcome is not None
    assert recorded.outcome.state is core.OutcomeState.PUBLISHED  # a WARN check passes
    (move,) = catalog.tags.get_history("main")
    assert move.run_id == result.run_id
    assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {"orders", "revenue"}
    assert catalog.runs.get_run(result.run_id).status == "success"


def test_a_failed_error_check_keeps_the_run_off_main(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = run(orchestrator, instance, orders, revenue, revenue_is_huge)
    assert result.success  # a non-blocking check leaves the run successful
    recorded = publish_run(result.run_id, instance=instance, orchestrator=orchestrator)
    assert recorded is not None
    assert recorded.outcome == core.RunOutcome(
        core.OutcomeState.CHECKS_FAILED, checks=("revenue:revenue_is_huge",)
    )
    assert catalog.tags.list_tags() == []
    assert staged_nodes(catalog, result.run_id) == {"orders", "revenue"}  # kept to inspect


def test_a_failed_run_is_not_published(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = run(orchestrator, instance, orders, revenue, orders_are_few)
    assert not result.success  # the blocking check failed the run
    recorded = publish_run(result.run_id, instance=instance, orchestrator=orchestrator)
    assert recorded is not None
    assert recorded.outcome == core.RunOutcome(core.OutcomeState.FAILED)
    assert catalog.tags.list_tags() == []


def test_the_sensor_publishes_each_passed_run_once_and_a_move_sensor_fires_once(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    first = run(orchestrator, instance, orders, revenue)
    second = run(orchestrator, instance, orders, revenue, revenue_is_huge)
    with dg.build_sensor_context(
        resources={"orchestrator": orchestrator}, instance=instance
    ) as context:
        result = run_snapshot_sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert state(catalog, first.run_id) is core.OutcomeState.PUBLISHED
    assert state(catalog, second.run_id) is core.OutcomeState.CHECKS_FAILED
    assert [move.run_id for move in catalog.tags.get_history("main")] == [first.run_id]
    job = dg.define_asset_job("after", selection=[revenue])
    with dg.build_sensor_context(
        resources={"orchestrator": orchestrator}, instance=instance
    ) as context:
        requests = tag_move_sensor("main", job)(context)
    assert isinstance(requests, dg.SensorResult)
    assert len(requests.run_requests or []) == 1  # one publish, one move, one run


def test_an_io_manager_of_another_mode_for_the_same_run_is_refused(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    catalog.runs.create_run("fixed", "main", publish="output")
    with pytest.raises(core.ConflictError, match="publishes 'output'"):
        catalog.runs.pin("fixed", "main", publish="run")
    bad = VersionedIOManager(orchestrator=orchestrator, publish="sometimes")
    failed = dg.materialize(
        [orders],
        resources={"orchestrator": orchestrator, "io_manager": bad},
        instance=instance,
        raise_on_error=False,
    )
    assert not failed.success
    assert catalog.tags.list_tags() == []


def test_a_move_sensor_with_asset_keys_fires_for_a_publish_that_changed_them(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    json = "application/json"
    catalog.assets.commit_output("seed", "main", "revenue", b"1", media_type=json)
    for run_id, node in (("touches-revenue", "revenue"), ("elsewhere", "orders")):
        catalog.runs.create_run(run_id, "main", publish="run")
        catalog.assets.commit_output(run_id, "main", node, b"2", media_type=json)
        catalog.assets.commit_output(run_id, "main", f"notes-{run_id}", b"3", media_type=json)
    sensor = tag_move_sensor("main", dg.define_asset_job("after", selection=[revenue]),
                             asset_keys=["revenue"])  # fmt: skip
    with dg.build_sensor_context(
        resources={"orchestrator": orchestrator}, instance=instance
    ) as context:
        first = sensor(context)
    assert isinstance(first, dg.SensorResult) and first.cursor is not None
    catalog.runs.publish("touches-revenue")
    catalog.runs.publish("elsewhere")  # a merge that adds orders and notes, not revenue
    with dg.build_sensor_context(
        cursor=first.cursor, resources={"orchestrator": orchestrator}, instance=instance
    ) as context:
        after = sensor(context)
    assert isinstance(after, dg.SensorResult)
    requested = [request.tags["orchestrator/move_id"] for request in after.run_requests or []]
    moves = catalog.tags.get_history("main")
    assert [move.run_id for move in moves[-2:]] == ["touches-revenue", "elsewhere"]
    assert requested == [str(moves[-2].id)]  # one run, for the publish that changed revenue
