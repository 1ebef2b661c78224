"""Runs: pinned snapshots, idempotent creation across processes, final status."""

import json
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa

import core
from tests.support import workers
from tests.support.helpers import DAG, row_counts, started_pool


@pytest.fixture
def main_tag(catalog: core.Services) -> core.CreateWorkflowResponse:
    return catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))


def test_create_run_pins_the_tags_target(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse
) -> None:
    run = catalog.runs.create_run("run-1", "main", job_name="nightly")
    assert (run.run_id, run.tag, run.base_id, run.status) == (
        "run-1",
        "main",
        main_tag.artifact_id,
        "started",
    )
    snapshot = catalog.artifacts.get_by_id(run.snapshot_id)
    assert snapshot.kind is core.ArtifactKind.RUN_SNAPSHOT
    assert snapshot.parent_id == main_tag.artifact_id
    content = json.loads(catalog.cas.get_content(snapshot.cas_id))
    assert content["run_id"] == "run-1"
    assert content["tag"] == "main"
    assert content["job"] == "nightly"
    assert content["base_version_hash"] == main_tag.version_hash
    assert "started_at" in content
    assert catalog.artifacts.resolve(run.snapshot_id) == DAG


def test_the_pin_survives_later_moves(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse
) -> None:
    run = catalog.runs.create_run("run-1")
    catalog.workflows.patch_workflow(
        "main", [{"op": "add", "path": "/nodes/late", "value": {"deps": []}}]
    )
    again = catalog.runs.create_run("run-1")
    assert again == run
    assert catalog.artifacts.resolve(again.snapshot_id) == DAG


def test_a_run_can_be_pinned_at_an_earlier_version(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse
) -> None:
    catalog.workflows.patch_workflow(
        "main", [{"op": "add", "path": "/nodes/late", "value": {"deps": []}}]
    )
    run = catalog.runs.create_run("run-1", at_version=main_tag.version_hash)
    assert run.base_id == main_tag.artifact_id
    assert catalog.artifacts.resolve(run.snapshot_id) == DAG
    before = row_counts(catalog)
    for bad, error in [("sha256:" + "0" * 64, core.NotFoundError), ("v1", core.ValidationError)]:
        with pytest.raises(error, match=bad):
            catalog.runs.create_run("run-2", at_version=bad)
    assert row_counts(catalog) == before


def test_a_run_is_pinned_to_one_tag(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse, database_url: str
) -> None:
    run = catalog.runs.create_run("run-1", "main")
    before = row_counts(catalog)
    message = "run 'run-1' is pinned to tag 'main', so it cannot read or write tag 'prod'"
    with pytest.raises(core.ConflictError, match=message):
        catalog.runs.create_run("run-1", "prod")
    with pytest.raises(core.ConflictError, match=message):
        catalog.runs.pin("run-1", "prod")  # answered from this process's memory
    with (
        core.connect(database_url, catalog.blob_root) as other_process,
        pytest.raises(core.ConflictError, match=message),
    ):
        other_process.runs.pin("run-1", "prod")  # answered from the catalog
    assert row_counts(catalog) == before
    assert catalog.runs.get_run("run-1") == run


def test_a_run_on_a_new_tag_is_pinned_to_nothing(catalog: core.Services) -> None:
    run = catalog.runs.create_run("first-run", "brand/new")
    assert (run.tag, run.base_id) == ("brand/new", None)
    snapshot = catalog.artifacts.get_by_id(run.snapshot_id)
    assert snapshot.parent_id is None
    assert json.loads(catalog.cas.get_content(snapshot.cas_id))["base_version_hash"] is None


def test_find_run_takes_an_id_or_a_unique_prefix(catalog: core.Services) -> None:
    for run_id in ("6f1c2a9e-0000-4000-8000-000000000001", "6f1c2a9e-1111", "a_b%c-run"):
        catalog.runs.create_run(run_id, "main")
    assert catalog.runs.find_run("6f1c2a9e-1111").run_id == "6f1c2a9e-1111"  # exact wins
    assert catalog.runs.find_run("6f1c2a9e-0").run_id.endswith("0001")
    assert catalog.runs.find_run("a_b%c-ru").run_id == "a_b%c-run"  # no wildcards
    with pytest.raises(core.ValidationError, match="ambiguous run id prefix '6f1c2a9e'"):
        catalog.runs.find_run("6f1c2a9e")
    with pytest.raises(core.NotFoundError, match="run 'a_b_c-ru' not found"):
        catalog.runs.find_run("a_b_c-ru")
    with pytest.raises(core.NotFoundError, match="run '6f1c' not found"):
        catalog.runs.find_run("6f1c")  # shorter than a prefix may be


def test_finish_run(catalog: core.Services, main_tag: core.CreateWorkflowResponse) -> None:
    catalog.runs.create_run("run-1")
    finished = catalog.runs.finish_run("run-1", "success")
    assert finished.status == "success"
    assert finished.finished_at is not None
    assert catalog.runs.finish_run("run-1", "success") == finished
    with pytest.raises(core.ConflictError, match="already finished as 'success'"):
        catalog.runs.finish_run("run-1", "failure")
    assert catalog.runs.get_run("run-1") == finished


def finish_at_once(catalog: core.Services, run_id: str, statuses: tuple[str, ...]) -> dict:
    """Finish ``run_id`` with each of ``statuses`` from its own thread, all at once; what
    each caller was told (the status, or the conflict's message)."""
    barrier = threading.Barrier(len(statuses))
    told: dict[str, str] = {}

    def finish(status: str) -> None:
        barrier.wait()
        try:
            told[status] = catalog.runs.finish_run(run_id, status).status
        except core.ConflictError as error:
            told[status] = str(error)

    threads = [threading.Thread(target=finish, args=(status,)) for status in statuses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return told


def test_a_run_finishes_at_the_time_given(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse
) -> None:
    catalog.runs.create_run("run-1")
    ended = datetime(2026, 11, 26, 21, 0, 0, 123000, tzinfo=timezone(timedelta(hours=1)))
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="finish time"):
        catalog.runs.finish_run("run-1", "success", finished_at=ended.replace(tzinfo=None))
    assert catalog.runs.get_run("run-1").status == "started" and row_counts(catalog) == before
    finished = catalog.runs.finish_run("run-1", "success", finished_at=ended)
    assert finished.finished_at == ended and catalog.runs.get_run("run-1") == finished


def test_concurrent_finishes_with_different_statuses_have_one_winner(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse
) -> None:
    for index in range(20):
        run_id = f"run-{index}"
        catalog.runs.create_run(run_id)
        told = finish_at_once(catalog, run_id, ("success", "failure"))
        stored = catalog.runs.get_run(run_id).status
        loser = "failure" if stored == "success" else "success"
        assert told[stored] == stored, told
        assert told[loser] == f"run {run_id!r} already finished as {stored!r}", told


def test_concurrent_first_outputs_of_a_run_leave_one_snapshot(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse
) -> None:
    """Steps of one run committing their first outputs at once pin the run once: no
    snapshot is left behind by the step that lost the race to record the run."""
    for index in range(10):
        run_id = f"run-{index}"
        barrier = threading.Barrier(2)

        def first_output(
            node: str, run_id: str = run_id, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            catalog.assets.commit_output(run_id, "main", node, b"1", media_type="a/b")

        threads = [threading.Thread(target=first_output, args=(n,)) for n in ("x", "y")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with catalog.database.transaction() as session:
            snapshots = session.scalar(
                sa.text("SELECT count(*) FROM artifacts WHERE kind = 'run_snapshot' AND name = :r"),
                {"r": run_id},
            )
        assert snapshots == 1, run_id
        assert {io.node for io in catalog.runs.get_run_io(run_id)} == {"x", "y"}


def test_run_errors_change_nothing(
    catalog: core.Services, main_tag: core.CreateWorkflowResponse
) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="tag name 'a//b'"):
        catalog.runs.create_run("run-1", "a//b")
    with pytest.raises(core.ValidationError, match="run id ''"):
        catalog.runs.create_run("")
    with pytest.raises(core.NotFoundError, match="'nope'"):
        catalog.runs.get_run("nope")
    for limit in (0, -1, 10**9, "5"):
        with pytest.raises(core.ValidationError, match=f"invalid limit {limit!r}"):
            catalog.runs.list_runs(limit=limit)  # type: ignore[arg-type]
    with pytest.raises(core.NotFoundError, match="'nope'"):
        catalog.runs.finish_run("nope", "success")
    catalog.runs.create_run("run-1")
    with pytest.raises(core.ValidationError, match="'done'"):
        catalog.runs.finish_run("run-1", "done")
    with pytest.raises(core.ValidationError, match="'started'"):
        catalog.runs.finish_run("run-1", "started")
    with pytest.raises(core.ValidationError, match=r"\['success'\]"):
        catalog.runs.finish_run("run-1", ["success"])  # type: ignore[arg-type]
    assert row_counts(catalog)["runs"] == before["runs"] + 1


@pytest.mark.slow
def test_concurrent_create_run_returns_one_snapshot(
    catalog: core.Services,
    main_tag: core.CreateWorkflowResponse,
    database_url: str,
    blob_root: Path,
) -> None:
    with started_pool(4) as (pool, start_at):
        futures = [
            pool.submit(workers.create_run, database_url, str(blob_root), "run-x", start_at)
            for _ in range(4)
        ]
        snapshot_ids = {future.result() for future in futures}
    assert len(snapshot_ids) == 1
    assert str(catalog.runs.get_run("run-x").snapshot_id) in snapshot_ids
    assert row_counts(catalog)["runs"] == 1
    assert row_counts(catalog)["artifacts"] == 2
