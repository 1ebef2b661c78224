"""Op outputs (values that are no asset) belong to their run; a re-execution reads what
the run it re-executes produced, op outputs and asset values alike."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

import core
from tests.dagster import rerun_defs

IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


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


def re_executed(
    get_job: Callable[[], dg.JobDefinition],
    node: str,
    later_run: Callable[[dg.DagsterInstance], object],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> object:
    """Run ``get_job``'s job, failing at its second step, with the value "first"; then
    ``later_run`` with the value "later"; then re-execute the failed run from its failure:
    ``node``'s output in the re-execution."""
    fail = tmp_path / "fail"
    monkeypatch.setenv("ORCHESTRATOR_TEST_FAIL", str(fail))
    fail.touch()
    job = dg.reconstructable(get_job)
    with dg.instance_for_test() as instance:
        monkeypatch.setenv("ORCHESTRATOR_TEST_VALUE", "first")
        failed = dg.execute_job(job, instance, run_config=IN_PROCESS)
        assert not failed.success
        monkeypatch.setenv("ORCHESTRATOR_TEST_VALUE", "later")
        later_run(instance)
        fail.unlink()
        options = dg.ReexecutionOptions.from_failure(failed.run_id, instance)
        with dg.execute_job(
            job, instance, run_config=IN_PROCESS, reexecution_options=options
        ) as again:
            assert again.success
            return again.output_for_node(node)


@pytest.fixture
def catalog_env(database_url: str, blob_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The catalog of ``rerun_defs``' resources (they read the environment)."""
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(blob_root))


@pytest.mark.slow
@pytest.mark.usefixtures("catalog_env")
def test_a_re_execution_reads_the_op_outputs_of_the_run_it_re_executes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def other_job_with_an_op_of_that_name(instance: dg.DagsterInstance) -> None:
        other_job.execute_in_process(resources=rerun_defs.resources, instance=instance)

    used = re_executed(
        rerun_defs.get_op_job, "use", other_job_with_an_op_of_that_name, tmp_path, monkeypatch
    )
    assert used == "used first"


@pytest.mark.slow
@pytest.mark.usefixtures("catalog_env")
def test_a_re_execution_reads_the_asset_values_its_parent_run_produced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = dg.reconstructable(rerun_defs.get_asset_job)

    def a_run_that_moves_up_on_main(instance: dg.DagsterInstance) -> None:
        run = dg.execute_job(
            job, instance, run_config=IN_PROCESS, asset_selection=[dg.AssetKey("up")]
        )
        assert run.success

    down = re_executed(
        rerun_defs.get_asset_job, "down", a_run_that_moves_up_on_main, tmp_path, monkeypatch
    )
    assert down == "down saw first"
