"""VersionedIOManager in real in-process Dagster runs, on DuckDB and Postgres."""

import datetime as dt

import dagster as dg

import core
from orchestrator_dagster import OrchestratorResource
from tests.support.helpers import row_counts


@dg.asset(code_version="v1")
def orders() -> list[dict]:
    return [{"id": 1, "amount": 10.0}, {"id": 2, "amount": 32.5}]


@dg.asset
def revenue(orders: list[dict]) -> float:
    return sum(order["amount"] for order in orders)


@dg.asset(key_prefix=["sales"])
def summary(orders: list[dict], revenue: float) -> dict:
    return {"orders": len(orders), "revenue": revenue}


def test_jobs_dagster_names_itself_are_not_recorded(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    adhoc = dg.materialize([orders], resources=resources, instance=instance)
    named = (
        dg.Definitions(assets=[orders], jobs=[dg.define_asset_job("nightly")], resources=resources)
        .get_job_def("nightly")
        .execute_in_process(instance=instance)
    )
    assert adhoc.dagster_run.job_name.startswith("__")
    assert catalog.runs.get_run(adhoc.run_id).job_name is None
    assert catalog.runs.get_run(named.run_id).job_name == "nightly"
    (move,) = catalog.tags.get_history("main")  # the named run stored the same value
    assert catalog.artifacts.get_by_id(move.to_target_id).created_by is None


def materialisations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.asset_key.to_user_string(): event.materialization.metadata
        for event in result.get_asset_materialization_events()
        for _ in [event.event_specific_data]
    }


def test_outputs_become_versions_of_main(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = dg.materialize([orders, revenue, summary], resources=resources, instance=instance)
    assert result.success
    document = catalog.workflows.get_workflow_by_tag("main")
    assert document["nodes"]["sales/summary"]["deps"] == ["orders", "revenue"]
    assert document["nodes"]["orders"]["code_version"] == "v1"
    assert catalog.tags.get_tag("main").revision == 3
    history = catalog.tags.get_history("main")
    assert [move.run_id for move in history] == [result.run_id] * 3

    metadata = materialisations(result)
    summary_meta = metadata["sales/summary"]
    cas_id = summary_meta["orchestrator/cas_id"].value
    assert cas_id == document["nodes"]["sales/summary"]["cas_id"]
    assert summary_meta["orchestrator/tag"].value == "main"
    assert (
        summary_meta["orchestrator/version_hash"].value
        == catalog.artifacts.get_by_id(catalog.tags.get_tag("main").target_id).version_hash
    )
    assert summary_meta["orchestrator/revision"].value == 3
    # the move as the CLI shows it: version hashes, each a ref `orchestrator show` takes
    to_version = catalog.artifacts.get_by_id(history[-1].to_target_id).version_hash
    from_version = catalog.artifacts.get_by_id(history[-1].from_target_id).version_hash
    assert summary_meta["orchestrator/to"] == dg.MetadataValue.text(to_version)
    assert summary_meta["orchestrator/from"] == dg.MetadataValue.text(from_version)
    assert summary_meta["orchestrator/version_hash"] == dg.MetadataValue.text(to_version)
    assert catalog.refs.resolve(from_version).id == history[-1].from_target_id
    assert metadata["orders"]["orchestrator/from"] == dg.MetadataValue.text("")  # a new tag
    assert summary_meta["orchestrator/unchanged"].value is False
    assert summary_meta["orchestrator/media_type"].value == "application/json"
    assert summary_meta["orchestrator/size"].value == len(catalog.cas.get_content(cas_id))
    assert summary_meta["orchestrator/preview"].value == {"orders": 2, "revenue": 42.5}

    event = result.get_asset_materialization_events()[0]
    tags = event.event_specific_data.materialization.tags
    assert tags["dagster/data_version"] == metadata["orders"]["orchestrator/cas_id"].value[7:]

    ios = catalog.runs.get_run_io(result.run_id)
    assert {(io.direction.value, io.node) for io in ios} >= {
        ("output", "orders"),
        ("input", "orders"),
        ("output", "sales/summary"),
    }


def test_unchanged_content_is_a_no_op(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    dg.materialize([orders, revenue], resources=resources, instance=instance)
    before = row_counts(catalog)
    again = dg.materialize([orders, revenue], resources=resources, instance=instance)
    for metadata in materialisations(again).values():
        assert metadata["orchestrator/unchanged"].value is True
        assert metadata["orchestrator/revision"].value == 2
    after = row_counts(catalog)
    assert (after["artifacts"], after["tag_moves"]) == (
        before["artifacts"] + 1,
        before["tag_moves"],
    )  # the only new artifact is the second run's snapshot
    assert catalog.tags.get_tag("main").revision == 2


REGIONS = dg.StaticPartitionsDefinition(["eu", "us"])


@dg.asset(partitions_def=REGIONS)
def regional(context: dg.AssetExecutionContext) -> dict:
    return {"region": context.partition_key}


@dg.asset
def combined(regional: dict[str, dict]) -> list[str]:
    return sorted(value["region"] for value in regional.values())


def test_partitions_keep_one_entry_each(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    for key in ("eu", "us"):
        result = dg.materialize(
            [regional], partition_key=key, resources=resources, instance=instance
        )
        assert materialisations(result)["regional"]["orchestrator/partition"].value == key
    node = catalog.workflows.get_workflow_by_tag("main")["nodes"]["regional"]
    assert set(node["partitions"]) == {"eu", "us"}
    assert "cas_id" not in node
    result = dg.materialize(
        [regional, combined], selection=[combined], resources=resources, instance=instance
    )
    assert result.output_for_node("combined") == ["eu", "us"]


DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-04")


@dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
def daily(context: dg.AssetExecutionContext) -> dict:
    return {key: f"value {key}" for key in context.partition_keys}


def test_several_partitions_in_one_step_fail_saying_what_to_do(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = dg.materialize(
        [daily],
        resources=resources,
        instance=instance,
        raise_on_error=False,
        tags={
            "dagster/asset_partition_range_start": "2026-01-01",
            "dagster/asset_partition_range_end": "2026-01-03",
        },
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error = failure.step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    assert any("3 partitions in one step" in m and "multi_run(1)" in m for m in messages)
    assert catalog.tags.list_tags() == []


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


@dg.asset
def odd_values() -> dict:
    return {"when": dt.date(2026, 1, 2), "tuple": (1, 2), "point": Point(3)}


@dg.asset
def uses_odd_values(odd_values: dict) -> int:
    assert odd_values["when"] == dt.date(2026, 1, 2)
    assert odd_values["tuple"] == (1, 2)
    return odd_values["point"].x


def test_values_that_are_not_json_are_pickled(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = dg.materialize([odd_values, uses_odd_values], resources=resources, instance=instance)
    assert result.success
    meta = materialisations(result)["odd_values"]
    assert meta["orchestrator/media_type"].value == "application/x-python-pickle"
    assert "orchestrator/preview" not in meta
    assert result.output_for_node("uses_odd_values") == 3


@dg.asset
def unencodable() -> object:
    return lambda: None


@dg.asset
def explodes() -> int:
    raise RuntimeError("boom")


def test_bad_values_and_failing_assets_commit_nothing(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    dg.materialize([orders], resources=resources, instance=instance)
    before = row_counts(catalog)
    result = dg.materialize(
        [unencodable], resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.step_failure_data.error)
    assert "cannot encode the output of asset 'unencodable'" in message
    assert "function" in message

    result = dg.materialize(
        [explodes], resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    after = row_counts(catalog)
    assert (after["cas_blobs"], after["tag_moves"]) == (
        before["cas_blobs"] + 2,
        before["tag_moves"],
    )  # two new run snapshots, no value and no move
    assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {"orders"}


@dg.asset
def reads_then_fails(orders: list[dict]) -> int:
    raise RuntimeError(f"failed after reading {len(orders)} orders")


def test_a_failed_steps_reads_are_recorded_when_the_run_ends(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    result = dg.materialize(
        [orders, reads_then_fails], resources=resources, instance=instance, raise_on_error=False
    )
    assert not result.success
    lineage = {(io.direction.value, io.node) for io in catalog.runs.get_run_io(result.run_id)}
    assert lineage == {("output", "orders"), ("input", "orders")}


@dg.asset
def ghost() -> int:
    return 1


@dg.asset
def reads_ghost(ghost: int) -> int:
    return ghost


def test_missing_upstream_value_names_asset_and_tag(
    resources: dict, instance: dg.DagsterInstance
) -> None:
    result = dg.materialize(
        [ghost, reads_ghost],
        selection=[reads_ghost],
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "asset 'ghost' has no stored value on tag 'main'" in str(failure.step_failure_data.error)


@dg.asset(ins={"orders": dg.AssetIn(metadata={"orchestrator/tag": "prod"})})
def prod_revenue(orders: list[dict]) -> float:
    return sum(order["amount"] for order in orders)


def test_an_explicit_pin_wins(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    dg.materialize([orders], resources=resources, instance=instance)
    old = catalog.tags.get_tag("main")
    catalog.tags.create_tag("prod", old.target_id)
    catalog.assets.commit_output(
        "other-writer",
        "main",
        "orders",
        b'[{"id": 9, "amount": 1.0}]',
        media_type="application/json",
    )
    result = dg.materialize(
        [orders, prod_revenue], selection=[prod_revenue], resources=resources, instance=instance
    )
    assert result.output_for_node("prod_revenue") == 42.5

    version = catalog.artifacts.get_by_id(old.target_id).version_hash

    @dg.asset(ins={"orders": dg.AssetIn(metadata={"orchestrator/version": version})})
    def pinned_revenue(orders: list[dict]) -> float:
        return sum(order["amount"] for order in orders)

    result = dg.materialize(
        [orders, pinned_revenue], selection=[pinned_revenue], resources=resources, instance=instance
    )
    assert result.output_for_node("pinned_revenue") == 42.5
    result = dg.materialize(
        [orders, revenue], selection=[revenue], resources=resources, instance=instance
    )
    assert result.output_for_node("revenue") == 1.0

    prod_orders = dg.AssetSpec("orders", metadata={"orchestrator/tag": "prod"})  # external
    result = dg.materialize([prod_orders, revenue], resources=resources, instance=instance)
    assert result.output_for_node("revenue") == 42.5


@dg.asset
def rival_write(orchestrator: OrchestratorResource) -> int:
    """Another writer moves main mid-run, with a new value of ``orders``."""
    orchestrator.catalog.assets.commit_output(
        "rival-run",
        "main",
        "orders",
        b'[{"id": 7, "amount": 1000.0}]',
        media_type="application/json",
    )
    return 1


@dg.asset(deps=[rival_write])
def late_revenue(orders: list[dict]) -> float:
    return sum(order["amount"] for order in orders)


def test_a_run_reads_the_values_of_its_pinned_snapshot(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    dg.materialize([orders], resources=resources, instance=instance)
    result = dg.materialize(
        [orders, rival_write, late_revenue],
        selection=[rival_write, late_revenue],
        resources=resources,
        instance=instance,
    )
    assert result.success
    assert catalog.assets.read(catalog.assets.locate_input(None, "main", "orders")) == (
        b'[{"id": 7, "amount": 1000.0}]'
    )  # main really moved before late_revenue ran...
    assert result.output_for_node("late_revenue") == 42.5  # ...but the run read its pin


def test_a_ref_pins_an_input_as_of_a_past_version(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    dg.materialize([orders], resources=resources, instance=instance)
    catalog.tags.create_tag("prod", catalog.tags.get_tag("main").target_id)
    before = catalog.tags.get_history("prod")[-1].moved_at
    catalog.assets.commit_output(
        "other-writer",
        "main",
        "orders",
        b'[{"id": 9, "amount": 1.0}]',
        media_type="application/json",
    )
    catalog.tags.move_tag("prod", catalog.tags.get_tag("main").target_id)
    for ref in ("prod~1", "prod@{1}", f"prod@{{{before.isoformat()}}}", "prod^"):

        @dg.asset(
            name="past_revenue", ins={"orders": dg.AssetIn(metadata={"orchestrator/version": ref})}
        )
        def past_revenue(orders: list[dict]) -> float:
            return sum(order["amount"] for order in orders)

        result = dg.materialize(
            [orders, past_revenue], selection=[past_revenue], resources=resources, instance=instance
        )
        assert result.output_for_node("past_revenue") == 42.5, ref


@dg.asset(ins={"orders": dg.AssetIn(metadata={"orchestrator/tag": "prod"})})
def first_read(orders: list[dict]) -> float:
    return sum(order["amount"] for order in orders)


@dg.asset(deps=[first_read])
def prod_mover(orchestrator: OrchestratorResource) -> int:
    """Moves prod mid-run to a version with another value of ``orders``."""
    catalog = orchestrator.catalog
    catalog.assets.commit_output(
        "rival-run",
        "main",
        "orders",
        b'[{"id": 7, "amount": 1000.0}]',
        media_type="application/json",
    )
    catalog.tags.move_tag("prod", catalog.tags.get_tag("main").target_id)
    return 1


@dg.asset(deps=[prod_mover], ins={"orders": dg.AssetIn(metadata={"orchestrator/tag": "prod"})})
def second_read(orders: list[dict]) -> float:
    return sum(order["amount"] for order in orders)


def test_a_run_reads_one_version_of_a_pinned_tag_while_it_moves(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    dg.materialize([orders], resources=resources, instance=instance)
    pinned = catalog.tags.create_tag("prod", catalog.tags.get_tag("main").target_id).target_id
    result = dg.materialize(
        [orders, first_read, prod_mover, second_read],
        selection=[first_read, prod_mover, second_read],
        resources=resources,
        instance=instance,
    )
    assert result.output_for_node("first_read") == result.output_for_node("second_read") == 42.5
    assert catalog.tags.get_tag("prod").target_id != pinned  # prod really moved mid-run
    assert catalog.refs.resolve(f"prod@{{run:{result.run_id}}}").id == pinned
