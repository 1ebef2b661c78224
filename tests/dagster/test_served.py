"""Multi-process runs whose steps talk to a served catalog (``orchestrator serve``): the
step processes load no storage, and the catalog ends as a run with its own database
would leave it, on both databases."""

import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

import core
from core.client import ServedSteps
from orchestrator_dagster import OrchestratorResource, publish_run
from orchestrator_dagster.io_manager import PUBLISH_TAG_KEY
from tests.dagster import served_defs
from tests.http.server import serve


@pytest.fixture
def served(
    database_url: str, blob_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The catalog served, and the environment that points the step processes at it."""
    with serve(database_url, blob_root, tmp_path / "server.log") as url:
        monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
        monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(blob_root))
        monkeypatch.setenv("ORCHESTRATOR_SERVER_URL", url)
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("publish", ["output", "run"])
def test_served_steps_load_no_storage_and_land_on_main(
    database_url: str, blob_root: Path, served: str, publish: str
) -> None:
    with dg.instance_for_test() as instance:
        result = dg.execute_job(
            dg.reconstructable(served_defs.branches_job), instance, tags={PUBLISH_TAG_KEY: publish}
        )
        assert result.success
        processes = {e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
        assert len(processes) == served_defs.WIDTH + 1
        if publish == "run":
            direct = OrchestratorResource(database_url=database_url, blob_root=str(blob_root))
            run = publish_run(result.run_id, instance=instance, orchestrator=direct)
            assert run is not None and run.outcome is not None
            assert run.outcome.state == core.OutcomeState.PUBLISHED

    branches = [f"branch_{i}" for i in range(served_defs.WIDTH)]
    with core.connect(database_url, blob_root) as catalog:
        nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
        assert set(nodes) == {"numbers", *branches}
        for index, branch in enumerate(branches):
            value = catalog.assets.locate_input(None, "main", branch)
            stored = json.loads(catalog.assets.read(value))
            assert stored == {"total": 45 + index, "loaded": []}, "a served step loaded storage"
        history = catalog.tags.get_history("main")
        assert len(history) == (len(nodes) if publish == "output" else 1)
        assert {move.run_id for move in history} == {result.run_id}
        for earlier, later in itertools.pairwise(history):
            assert later.from_target_id == earlier.to_target_id
        lineage = catalog.runs.get_run_io(result.run_id)
        reads = [io for io in lineage if io.direction == core.Direction.INPUT]
        assert {read.node for read in reads} == {"numbers"}


@pytest.mark.slow
def test_served_op_outputs_stream_above_the_large_value_bound(
    database_url: str, blob_root: Path, served: str
) -> None:
    job = dg.reconstructable(served_defs.op_chain_job)
    with dg.instance_for_test() as instance, dg.execute_job(job, instance) as result:
        assert result.success
        measured = result.output_for_node("measure")
    assert measured == {"size": 3 << 20, "loaded": []}


def test_a_served_resource_opens_the_database_only_for_its_catalog(
    database_url: str, blob_root: Path
) -> None:
    resource = OrchestratorResource(
        database_url=database_url, blob_root=str(blob_root), server_url="http://127.0.0.1:9/"
    )
    with dg.build_resources({"orchestrator": resource}) as built:
        orchestrator = built.orchestrator
        assert isinstance(orchestrator.steps, ServedSteps)
        assert orchestrator.steps.url == "http://127.0.0.1:9"
        assert orchestrator.catalog.tags.list_tags() == []  # a sensor's use: opened now


def test_a_malformed_server_url_fails_the_resource_naming_it() -> None:
    resource = OrchestratorResource(server_url="https://catalog:8000")
    with (
        pytest.raises(dg.DagsterResourceFunctionError) as failed,
        dg.build_resources({"orchestrator": resource}),
    ):
        pass
    assert isinstance(failed.value.__cause__, core.ValidationError)
    assert "'https://catalog:8000'" in str(failed.value.__cause__)
