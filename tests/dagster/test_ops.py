"""Op outputs (values that are no asset) belong to their run; a re-execution reads what
the run it re-executes produced, op outputs and asset values alike."""

from pathlib import Path

import dagster as dg
import pytest

import core
from orchestrator_dagster import OrchestratorResource, VersionedIOManager
from tests.dagster import rerun_defs

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


@pytest.fixture
def resources(database_url: str, blob_root: Path) -> dict[str, object]:
    orchestrator = OrchestratorResource(database_url=database_url, blob_root=str(blob_root))
    return {
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    }


@dg.op(out=dg.DynamicOut())
def emit():  # type: ignore[no-untyped-def]
    for key in ("a", "b", "c"):
        yield dg.DynamicOutput(key.upper(), mapping_key=key)


@dg.op
def process(value: str) -> str:
    return f"processed {value}"


@dg.op
def gather(values: list[str]) -> list[str]:
    return sorted(values)


@dg.job
def fan_out() -> None:
    gather(emit().map(process).collect())


@dg.op(name="load")
def load_other() -> str:
    return "another job's value"


@dg.job
def other_job() -> None:
    load_other()


def test_dynamic_outputs_are_kept_apart_and_move_no_tag(
    resources: dict, catalog: core.Services
) -> None:
    with dg.instance_for_test() as instance:
        result = fan_out.execute_in_process(resources=resources, instance=instance)
    assert result.output_for_node("gather") == ["processed A", "processed B", "processed C"]
    outputs = {io.node for io in catalog.runs.get_run_io(result.run_id) if io.direction == "output"}
    assert {"emit.result[a]", "emit.result[b]", "emit.result[c]", "gather.result"} <= outputs
    assert catalog.tags.list_tags() == []  # op outputs join no DAG version
    output = next(
        event
        for event in result.all_events
        if event.event_type_value == "HANDLED_OUTPUT" and event.step_key == "gather"
    )
    assert output.event_specific_data.metadata["orchestrator/preview"].value == [
        "processed A",
        "processed B",
        "processed C",
    ]


@pytest.mark.slow
def test_a_re_execution_reads_the_op_outputs_of_the_run_it_re_executes(
    database_url: str, blob_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(blob_root))
    monkeypatch.setenv("ORCHESTRATOR_TEST_FAIL", str(tmp_path / "fail"))
    (tmp_path / "fail").touch()
    job = dg.reconstructable(rerun_defs.get_op_job)
    with dg.instance_for_test() as instance:
        monkeypatch.setenv("ORCHESTRATOR_TEST_VALUE", "the failed run's value")
        failed = dg.execute_job(job, instance, run_config=IN_PROCESS)
        assert not failed.success
        monkeypatch.setenv("ORCHESTRATOR_TEST_VALUE", "a later run's value")
        other_job.execute_in_process(resources=rerun_defs.resources, instance=instance)
        (tmp_path / "fail").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(
            job, instance, run_config=IN_PROCESS, reexecution_options=options
        ) as again:
            assert again.success
            assert again.output_for_node("use") == "used the failed run's value"


@pytest.mark.slow
def test_a_re_execution_reads_the_asset_values_its_parent_run_produced(
    database_url: str, blob_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(blob_root))
    monkeypatch.setenv("ORCHESTRATOR_TEST_FAIL", str(tmp_path / "fail"))
    (tmp_path / "fail").touch()
    job = dg.reconstructable(rerun_defs.get_asset_job)
    with dg.instance_for_test() as instance:
        monkeypatch.setenv("ORCHESTRATOR_TEST_VALUE", "up as the failed run made it")
        failed = dg.execute_job(job, instance, run_config=IN_PROCESS)
        assert not failed.success
        monkeypatch.setenv("ORCHESTRATOR_TEST_VALUE", "up as a later run made it")
        later = dg.execute_job(
            job, instance, run_config=IN_PROCESS, asset_selection=[dg.AssetKey("up")]
        )
        assert later.success
        (tmp_path / "fail").unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(
            job, instance, run_config=IN_PROCESS, reexecution_options=options
        ) as again:
            assert again.success
            assert again.output_for_node("down") == "down saw up as the failed run made it"
