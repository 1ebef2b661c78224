"""Blame and blob lineage after real Dagster runs (the IO manager), on DuckDB and Postgres."""

from pathlib import Path

import dagster as dg

import core
from orchestrator_dagster import OrchestratorResource, VersionedIOManager, publish_run

ORDERS = {"rows": [1, 2, 3]}


@dg.asset
def orders() -> list[int]:
    return list(ORDERS["rows"])


@dg.asset
def revenue(orders: list[int]) -> int:
    return sum(orders)


def entries(blame: core.Blame) -> dict[str, core.BlameEntry]:
    return {entry.node: entry for entry in blame.entries}


def test_blame_and_lineage_follow_the_runs(
    resources: dict, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    ORDERS["rows"] = [1, 2, 3]
    first = dg.materialize([orders, revenue], resources=resources, instance=instance)
    ORDERS["rows"] = [4, 5]
    second = dg.materialize([orders, revenue], resources=resources, instance=instance)
    again = dg.materialize([orders], resources=resources, instance=instance)  # same bytes
    assert first.success and second.success and again.success

    blame = catalog.lineage.blame("main")
    assert blame.version.id == catalog.tags.get_tag("main").target_id
    by_node = entries(blame)
    assert set(by_node) == {"orders", "revenue"}
    moves = {
        (move.run_id, move.reason): move.to_target_id for move in catalog.tags.get_history("main")
    }
    # each value is blamed on the version the second run's commit made, and on that run
    for node in ("orders", "revenue"):
        entry = by_node[node]
        assert entry.since.id == moves[(second.run_id, f"materialize {node}")]
        assert entry.produced_by is not None
        assert entry.produced_by.run_id == second.run_id
        assert entry.produced_by.tag == "main"
        assert entry.produced_by.recorded_at == entry.since.created_at  # one commit
        assert entry.cas_id == catalog.runs.get_output(second.run_id, node, None).cas_id
    assert by_node["revenue"].size == len(b"9")

    # a third run re-materialised the same orders: it moved nothing and changed no blame,
    # and the blob's lineage lists both runs that produced it, and the run that read it
    orders_id = by_node["orders"].cas_id
    lineage = catalog.lineage.of_blob(orders_id)
    assert [use.run_id for use in lineage.produced_by] == [second.run_id, again.run_id]
    assert [(use.run_id, use.node) for use in lineage.read_by] == [(second.run_id, "orders")]
    assert lineage.produced_by[0].recorded_at <= lineage.produced_by[1].recorded_at
    assert lineage.blob.cas_id == orders_id and lineage.blob.media_type == "application/json"

    # the older value's lineage names the first run
    old = catalog.lineage.blame(f"{moves[(first.run_id, 'materialize revenue')]}")
    old_orders = entries(old)["orders"]
    assert old_orders.produced_by is not None and old_orders.produced_by.run_id == first.run_id
    assert old_orders.since.id == moves[(first.run_id, "materialize orders")]


def test_a_published_run_is_blamed_on_its_staged_versions(
    database_url: str, blob_root: Path, instance: dg.DagsterInstance, catalog: core.Services
) -> None:
    ORDERS["rows"] = [7]
    orchestrator = OrchestratorResource(database_url=database_url, blob_root=str(blob_root))
    staged = {
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator, publish="run"),
    }
    result = dg.materialize([orders, revenue], resources=staged, instance=instance)
    assert result.success
    staged_blame = entries(catalog.lineage.blame(f"run:{result.run_id}"))
    assert publish_run(result.run_id, instance=instance, orchestrator=orchestrator) is not None

    by_node = entries(catalog.lineage.blame("main"))  # a fast-forward: the staged versions
    for node in ("orders", "revenue"):
        assert by_node[node].since == staged_blame[node].since
        produced = by_node[node].produced_by
        assert produced is not None and produced.run_id == result.run_id
        assert produced.publish is core.PublishMode.RUN
        assert produced.status == core.RunStatus.SUCCESS.value
    assert by_node["orders"].since.id != by_node["revenue"].since.id
