"""``orchestrator blame`` and ``orchestrator lineage`` on both backends."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import core
from core.cli import cli

JSON = "application/json"


@pytest.fixture
def run(database_url: str, blob_root: Path):  # type: ignore[no-untyped-def]
    def invoke(*args: str) -> Result:
        return CliRunner().invoke(
            cli, ["--database-url", database_url, "--blob-root", str(blob_root), *args]
        )

    return invoke


@pytest.fixture
def values(catalog: core.Services) -> dict[str, str]:
    """main: ``orders`` by run-1 (read by run-2), ``plan`` written by hand."""
    by_hand = catalog.cas.store_content(b'"draft"', JSON)
    catalog.workflows.create_workflow(
        core.CreateWorkflowRequest(
            "sales",
            {"nodes": {"plan": {"deps": [], "cas_id": by_hand, "media_type": JSON, "size": 7}}},
        )
    )
    orders = catalog.assets.commit_output("run-1", "main", "orders", b"[1]", media_type=JSON)
    catalog.runs.create_run("run-2", "main", job_name="report")
    catalog.runs.record_io("run-2", inputs=[orders.value])
    return {"orders": orders.value.cas_id, "plan": by_hand}


def test_blame(run, values: dict[str, str], catalog: core.Services) -> None:  # type: ignore[no-untyped-def]
    result = run("blame", "main", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["version"]["id"] == str(catalog.tags.get_tag("main").target_id)
    by_node = {entry["node"]: entry for entry in shown["entries"]}
    assert by_node["orders"]["produced_by"]["run_id"] == "run-1"
    assert by_node["orders"]["since"]["id"] == shown["version"]["id"]
    assert by_node["plan"]["produced_by"] is None
    assert by_node["plan"]["cas_id"] == values["plan"]
    table = run("blame", "main")
    assert table.exit_code == 0, table.output
    (plan_line,) = [line for line in table.output.splitlines() if line.startswith("plan")]
    assert "by hand" in plan_line
    assert "run-1" in next(line for line in table.output.splitlines() if line.startswith("orders"))


def test_lineage(run, values: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    result = run("lineage", values["orders"], "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert [use["run_id"] for use in shown["produced_by"]] == ["run-1"]
    assert [(use["run_id"], use["job_name"]) for use in shown["read_by"]] == [("run-2", "report")]
    assert shown["blob"]["cas_id"] == values["orders"]
    table = run("lineage", values["orders"]).output.splitlines()
    assert table[0].split()[:3] == ["DIRECTION", "RUN", "NODE"]
    assert [line.split()[:2] for line in table[1:]] == [["output", "run-1"], ["input", "run-2"]]
    by_hand = run("lineage", values["plan"])
    assert by_hand.exit_code == 0 and "no run produced or read" in by_hand.output


def test_bad_and_unknown(run, values: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    bad = run("lineage", "sha256:abc")
    assert bad.exit_code == 2 and "'sha256:abc'" in bad.output
    unknown = run("lineage", "sha256:" + "0" * 64)
    assert unknown.exit_code == 3 and "not found" in unknown.output
    assert run("blame", "nope").exit_code == 3
