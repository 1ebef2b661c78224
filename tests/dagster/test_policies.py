"""Tag policies in real Dagster runs: a ``publish="output"`` run on a protected tag fails
at set-up, before any step; ``publish="run"`` lands; release tags are created once and
read through ``AssetIn`` pins; a policy set while a run is under way stops its next
output."""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from click.testing import CliRunner

import core
from core.cli import cli
from orchestrator_dagster import OrchestratorResource, VersionedIOManager, publish_run
from tests.support.helpers import row_counts


@dg.asset
def orders() -> list[int]:
    return [1, 2, 3]


@dg.asset
def revenue(orders: list[int]) -> int:
    return sum(orders)


@dg.asset(ins={"orders": dg.AssetIn(metadata={"orchestrator/tag": "v1.4"})})
def released_revenue(orders: list[int]) -> int:
    return sum(orders)


@pytest.fixture
def orchestrator(database_url: str, blob_root: Path) -> OrchestratorResource:
    return OrchestratorResource(database_url=database_url, blob_root=str(blob_root))


def materialize(
    orchestrator: OrchestratorResource,
    instance: dg.DagsterInstance,
    assets: list[Any],
    **io_manager: Any,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        assets,
        resources={
            "orchestrator": orchestrator,
            "io_manager": VersionedIOManager(orchestrator=orchestrator, **io_manager),
        },
        instance=instance,
        raise_on_error=False,
    )


def state(catalog: core.Services) -> tuple[Any, ...]:
    tags = catalog.tags.list_tags()
    return tags, {t.name: catalog.tags.get_history(t.name) for t in tags}, row_counts(catalog)


def messages(result: dg.ExecuteInProcessResult) -> str:
    """Every event's message and error text of the run."""
    texts = []
    for event in result.all_events:
        texts.append(event.message or "")
        data = event.event_specific_data
        error = getattr(data, "error", None)
        if error is not None:
            texts.append(error.to_string())
    return "\n".join(texts)


def test_a_publish_output_run_on_a_protected_tag_fails_at_set_up(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    assert materialize(orchestrator, instance, [orders, revenue]).success
    catalog.tags.set_policy("main", protected=True, moved_by="lead")
    before = state(catalog)
    result = materialize(orchestrator, instance, [orders, revenue])
    assert not result.success
    assert "tag 'main' is protected (policy 'main')" in messages(result)
    assert result.get_step_success_events() == []  # no step ran
    assert not any(e.is_step_start for e in result.all_events)
    assert state(catalog) == before
    with pytest.raises(core.NotFoundError):
        catalog.runs.get_run(result.run_id)  # not even recorded


def test_a_publish_run_run_on_a_protected_tag_lands(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    assert materialize(orchestrator, instance, [orders]).success
    catalog.tags.set_policy("main", protected=True)
    result = materialize(orchestrator, instance, [orders, revenue], publish="run")
    assert result.success
    recorded = publish_run(result.run_id, instance=instance, orchestrator=orchestrator)
    assert recorded is not None and recorded.outcome is not None
    assert recorded.outcome.state is core.OutcomeState.PUBLISHED
    last = catalog.tags.get_history("main")[-1]
    assert last.run_id == result.run_id and last.reason == f"publish run {result.run_id}"
    assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {"orders", "revenue"}


def test_a_release_tag_is_created_once_and_read_through_an_input_pin(
    orchestrator: OrchestratorResource,
    instance: dg.DagsterInstance,
    catalog: core.Services,
    database_url: str,
    blob_root: Path,
) -> None:
    assert materialize(orchestrator, instance, [orders]).success
    catalog.tags.set_policy("v*", immutable=True)
    cli_args = ["--database-url", database_url, "--blob-root", str(blob_root)]
    created = CliRunner().invoke(cli, [*cli_args, "tag", "create", "v1.4", "main"])
    assert created.exit_code == 0, created.output

    @dg.asset(name="orders")
    def newer_orders() -> list[int]:
        return [10, 20]

    assert materialize(orchestrator, instance, [newer_orders]).success  # main moves on
    again = CliRunner().invoke(cli, [*cli_args, "tag", "move", "v1.4", "main"])
    assert again.exit_code == 6 and "immutable (policy 'v*')" in again.stderr
    result = materialize(orchestrator, instance, [released_revenue, newer_orders])
    assert result.success
    assert result.output_for_node("released_revenue") == 6  # v1.4's orders, not main's
    # an IO manager writing to the release tag fails at set-up: it could never move it
    before = state(catalog)
    refused = materialize(orchestrator, instance, [orders], tag="v1.4")
    assert not refused.success and "tag 'v1.4' is immutable (policy 'v*')" in messages(refused)
    assert state(catalog) == before


def test_a_policy_set_during_a_run_stops_its_next_output(
    orchestrator: OrchestratorResource, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    assert materialize(orchestrator, instance, [orders]).success

    @dg.asset(name="revenue")
    def protecting_revenue(orders: list[int], orchestrator: OrchestratorResource) -> int:
        orchestrator.catalog.tags.set_policy("main", protected=True)  # while the run is on
        return sum(orders)

    result = materialize(orchestrator, instance, [orders, protecting_revenue])
    assert not result.success
    assert "tag 'main' is protected (policy 'main')" in messages(result)
    assert {m.reason for m in catalog.tags.get_history("main")} == {"materialize orders"}
    assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {"orders"}
