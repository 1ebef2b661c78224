"""Real multi-process runs: every step in its own spawned process, on both databases,
with the blobs in a local folder and in an S3 bucket (moto on loopback)."""

import itertools
from pathlib import Path

import dagster as dg
import pytest

import core
from tests.dagster import parallel_defs
from tests.support.blob_access import raw_blobs


@pytest.fixture
def blob_root(any_blob_root: Path | str) -> Path | str:
    return any_blob_root


@pytest.mark.slow
def test_parallel_steps_all_land_on_main(
    database_url: str, blob_root: Path | str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(blob_root))
    with dg.instance_for_test() as instance:
        result = dg.execute_job(dg.reconstructable(parallel_defs.parallel_job), instance)
        assert result.success
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
        assert steps == {f"branch_{i}" for i in range(parallel_defs.WIDTH)} | {"total"}
        processes = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        assert len(processes) == parallel_defs.WIDTH + 1

    with core.connect(database_url, blob_root) as catalog:
        nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
        assert set(nodes) == {f"branch_{i}" for i in range(parallel_defs.WIDTH)} | {"total"}
        assert all("cas_id" in node for node in nodes.values())
        history = catalog.tags.get_history("main")
        assert len(history) == parallel_defs.WIDTH + 1  # one move per materialisation
        assert {move.run_id for move in history} == {result.run_id}
        for earlier, later in itertools.pairwise(history):
            assert later.from_target_id == earlier.to_target_id
        assert catalog.assets.read(catalog.assets.locate_input(None, "main", "total")) == b"6"
        assert catalog.runs.get_run(result.run_id).base_id is None
        stored = raw_blobs(catalog).ids()
        assert {node["cas_id"] for node in nodes.values()} <= set(stored)
