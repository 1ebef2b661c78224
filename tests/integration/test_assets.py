"""The asset service: outputs committed to a tag, inputs located through pins and snapshots."""

from pathlib import Path
from typing import Any

import pytest

import core
from core.repository.commit_store import RepositoryCommitStore
from core.service.asset import LARGE_VALUE
from core.storage.blobstore import FolderBlobStore
from core.storage.commit_record import CommitRecord
from core.storage.duckdb.write_behind import JournaledCommitStore
from tests.support.helpers import (
    before_blob_writes,
    blob_files,
    disk_full_for,
    row_counts,
    statements_sent,
)

JSON = "application/json"


def commit(
    catalog: core.Services, node: str, content: bytes, **kwargs: object
) -> core.OutputCommit:
    run_id = kwargs.pop("run_id", "run-1")
    return catalog.assets.commit_output(run_id, "main", node, content, media_type=JSON, **kwargs)  # type: ignore[arg-type]


def test_first_output_creates_the_tag(catalog: core.Services) -> None:
    result = commit(catalog, "orders", b"[1]", code_version="v2")
    assert (result.changed, result.revision, result.from_target_id) == (True, 1, None)
    assert result.value == core.NodeValue("orders", None, catalog.cas.compute_hash(b"[1]"), JSON, 3)
    document = catalog.workflows.get_workflow_by_tag("main")
    assert document["nodes"]["orders"] == {
        "deps": [],
        "cas_id": result.value.cas_id,
        "media_type": JSON,
        "size": 3,
        "code_version": "v2",
    }
    (move,) = catalog.tags.get_history("main")
    assert (move.run_id, move.reason) == ("run-1", "materialize orders")
    assert catalog.runs.get_run("run-1").base_id is None


def test_unknown_deps_become_placeholder_nodes(catalog: core.Services) -> None:
    commit(catalog, "report", b"1", deps=["orders", "customers"])
    nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
    assert nodes["report"]["deps"] == ["customers", "orders"]
    assert nodes["orders"] == {"deps": []}
    commit(catalog, "orders", b"2")
    nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
    assert nodes["orders"]["cas_id"] == catalog.cas.compute_hash(b"2")
    assert nodes["report"]["deps"] == ["customers", "orders"]


def test_equal_content_is_a_no_op(catalog: core.Services) -> None:
    first = commit(catalog, "orders", b"[1]")
    before = row_counts(catalog)
    again = commit(catalog, "orders", b"[1]", run_id="run-2")
    assert not again.changed
    assert (again.artifact_id, again.revision) == (first.artifact_id, 1)
    after = row_counts(catalog)
    assert after["tag_moves"] == before["tag_moves"]
    assert after["artifacts"] == before["artifacts"] + 1  # run-2's snapshot only


def test_materialising_the_same_value_again_repairs_its_lost_file(
    catalog: core.Services,
) -> None:
    first = commit(catalog, "orders", b"[1, 2]")
    path = FolderBlobStore(catalog.blob_root).path(first.value.cas_id)
    path.write_bytes(b"[1, 3]")  # rot: the next read sets the file aside
    with pytest.raises(core.IntegrityError, match="corrupt"):
        catalog.assets.read(first.value)
    again = commit(catalog, "orders", b"[1, 2]", run_id="run-2")
    assert not again.changed
    assert catalog.assets.read(again.value) == b"[1, 2]"
    assert catalog.maintenance.verify().problems == []


def test_the_value_and_the_patch_are_recorded_together(catalog: core.Services) -> None:
    commit(catalog, "a", b"1")
    sent = statements_sent(catalog)
    second = commit(catalog, "a", b"2")
    patch_id = catalog.artifacts.get_by_id(second.artifact_id).cas_id  # DuckDB: folds first
    assert len([s for s in sent if "INSERT INTO cas_blobs" in s]) == 1  # both blobs at once
    assert catalog.cas.get_content(second.value.cas_id) == b"2"
    assert catalog.cas.get_blob(patch_id).media_type == "application/json-patch+json"
    assert catalog.maintenance.verify().problems == []


@pytest.mark.parametrize("publish", ["output", "run"])
def test_an_output_commit_on_postgres_is_one_read_and_one_write(
    postgres_schema_url: str, tmp_path: Path, publish: str
) -> None:
    with core.connect(postgres_schema_url, tmp_path / "blobs") as catalog:
        catalog.runs.create_run("run-1", "main", publish=publish)
        commit(catalog, "a", b"1", publish=publish)
        sent = statements_sent(catalog)
        second = commit(catalog, "b", b"2", deps=["a"], publish=publish)
        assert [statement.split()[0] for statement in sent] == ["SELECT", "WITH"]
        staged = catalog.runs.get_run("run-1").head_id if publish == "run" else None
        head = staged or catalog.tags.get_tag("main").target_id
        assert head == second.artifact_id
        assert catalog.maintenance.verify().problems == []


def test_a_value_whose_file_cannot_be_written_moves_nothing(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = commit(catalog, "a", b"1")
    before = row_counts(catalog)
    before_blob_writes(monkeypatch, disk_full_for(b"2"))
    with pytest.raises(OSError, match="No space left"):
        commit(catalog, "a", b"2")
    assert row_counts(catalog) == before
    assert catalog.tags.get_tag("main").target_id == first.artifact_id
    monkeypatch.undo()
    again = commit(catalog, "a", b"2")  # the same commit goes through once the disk has room
    assert again.changed and again.revision == first.revision + 1


def test_a_large_value_round_trips_and_equal_content_is_a_no_op(
    catalog: core.Services,
) -> None:
    content = bytes(range(256)) * (LARGE_VALUE // 256 + 1)
    first = commit(catalog, "big", content)
    again = commit(catalog, "big", content, run_id="run-2")
    assert (first.changed, again.changed) == (True, False)
    located = catalog.assets.locate_input(None, "main", "big")
    assert catalog.assets.read(located) == content
    assert catalog.maintenance.verify().problems == []


def test_later_commits_are_patch_sets(catalog: core.Services) -> None:
    commit(catalog, "a", b"1")
    second = commit(catalog, "b", b"2", deps=["a"])
    artifact = catalog.artifacts.get_by_id(second.artifact_id)
    assert artifact.kind is core.ArtifactKind.PATCH_SET
    assert second.from_target_id == catalog.tags.get_history("main")[0].to_target_id


def test_partitions(catalog: core.Services) -> None:
    commit(catalog, "daily", b"1", partition_key="2026-01-01")
    commit(catalog, "daily", b"2", partition_key="2026-01-02")
    node = catalog.workflows.get_workflow_by_tag("main")["nodes"]["daily"]
    assert set(node["partitions"]) == {"2026-01-01", "2026-01-02"}
    value = catalog.assets.locate_input(None, "main", "daily", partition_key="2026-01-02")
    assert catalog.assets.read(value) == b"2"
    with pytest.raises(core.NotFoundError, match="'daily' partition '2026-01-03'"):
        catalog.assets.locate_input(None, "main", "daily", partition_key="2026-01-03")


def test_inputs_prefer_pins_then_own_outputs_then_the_snapshot(catalog: core.Services) -> None:
    old = commit(catalog, "orders", b"old", run_id="setup")
    catalog.tags.create_tag("prod", old.artifact_id)
    catalog.runs.create_run("reader", "main")  # pinned while orders == old
    commit(catalog, "orders", b"new", run_id="writer")

    def read(run_id: str | None, **pins: str) -> bytes:
        return catalog.assets.read(catalog.assets.locate_input(run_id, "main", "orders", **pins))

    assert read("reader") == b"old"
    assert read(None) == b"new"
    assert read("reader", pin_tag="prod") == b"old"
    assert read(None, pin_version=old.version_hash) == b"old"
    commit(catalog, "orders", b"mine", run_id="reader")
    assert read("reader") == b"mine"
    catalog.assets.flush_reads("reader")
    inputs = [
        io for io in catalog.runs.get_run_io("reader") if io.direction == core.Direction.INPUT
    ]
    assert [io.cas_id for io in inputs] == [catalog.cas.compute_hash(b"mine")]


def inputs_of(catalog: core.Services, run_id: str) -> dict[str, str]:
    return {
        io.node: io.cas_id
        for io in catalog.runs.get_run_io(run_id)
        if io.direction == core.Direction.INPUT
    }


def test_reads_commit_with_the_runs_next_output_or_when_flushed(
    catalog: core.Services,
) -> None:
    orders = commit(catalog, "orders", b"[1]", run_id="setup").value
    catalog.runs.create_run("step", "main")
    assert catalog.assets.locate_input("step", "main", "orders") == orders
    assert inputs_of(catalog, "step") == {}  # noted, not written yet
    report = commit(catalog, "report", b"1", deps=["orders"], run_id="step").value
    assert inputs_of(catalog, "step") == {"orders": orders.cas_id}  # with the output
    assert catalog.assets.locate_input("step", "main", "report") == report  # its own output
    assert catalog.assets.flush_reads() == 1
    assert inputs_of(catalog, "step") == {"orders": orders.cas_id, "report": report.cas_id}
    assert catalog.assets.flush_reads("step") == 0


def test_a_commit_inside_a_callers_transaction_is_read_from_the_catalog(
    catalog: core.Services,
) -> None:
    commit(catalog, "x", b"1", run_id="r")
    with catalog.database.transaction():
        inner = commit(catalog, "x", b"2", run_id="r").value
    assert catalog.assets.locate_input("r", "main", "x") == inner
    with pytest.raises(RuntimeError), catalog.database.transaction():
        commit(catalog, "x", b"3", run_id="r")
        raise RuntimeError("the caller rolls back")
    assert catalog.assets.locate_input("r", "main", "x") == inner


def lose_the_first_swaps(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch, losses: int
) -> list[bool]:
    """Have the first ``losses`` compare-and-swaps of ``main`` lose, as when another writer
    moved the tag first (in either commit store: written behind, or through statements);
    returns whether each swap won."""
    answers: list[bool] = []
    for store in (RepositoryCommitStore, JournaledCommitStore):

        def racing(self: Any, record: CommitRecord, apply: Any = store.apply) -> int | None:
            if record.swap is None or record.swap.tag != "main":
                return apply(self, record)  # type: ignore[no-any-return]
            revision = None if len(answers) < losses else apply(self, record)
            answers.append(revision is not None)
            return revision  # type: ignore[no-any-return]

        monkeypatch.setattr(store, "apply", racing)
    return answers


def test_a_lost_race_is_retried_on_the_new_head(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(catalog, "x", b"1")
    moves = len(catalog.tags.get_history("main"))
    answers = lose_the_first_swaps(catalog, monkeypatch, losses=3)
    result = commit(catalog, "y", b"2")
    assert answers == [False, False, False, True]
    assert result.changed and result.revision == moves + 1
    history = catalog.tags.get_history("main")
    assert len(history) == moves + 1 and history[-1].from_target_id == history[-2].to_target_id
    assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {"x", "y"}


def test_a_patch_that_lost_a_race_is_retried(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(catalog, "x", b"1")
    answers = lose_the_first_swaps(catalog, monkeypatch, losses=2)
    catalog.workflows.patch_workflow(
        "main", [{"op": "add", "path": "/nodes/z", "value": {"deps": []}}]
    )
    assert answers == [False, False, True]
    assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {"x", "z"}


def test_a_race_lost_inside_a_callers_transaction_is_the_callers_to_retry(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit(catalog, "x", b"1")
    swaps = lose_the_first_swaps(catalog, monkeypatch, losses=100)
    before = row_counts(catalog)
    with pytest.raises(core.ConflictError, match="'main' moved"), catalog.database.transaction():
        commit(catalog, "x", b"2")
    assert swaps == [False]  # one attempt: its writes are in the caller's transaction
    assert row_counts(catalog) == before


def test_reads_flushed_in_a_rolled_back_transaction_stay_noted(catalog: core.Services) -> None:
    orders = commit(catalog, "orders", b"[1]", run_id="setup").value
    catalog.runs.create_run("step", "main")
    catalog.assets.locate_input("step", "main", "orders")
    with pytest.raises(RuntimeError), catalog.database.transaction():
        catalog.assets.flush_reads("step")
        raise RuntimeError("the caller rolls back")
    assert inputs_of(catalog, "step") == {}
    assert catalog.assets.flush_reads("step") == 1
    assert inputs_of(catalog, "step") == {"orders": orders.cas_id}


def test_missing_values_name_the_asset_and_tag(catalog: core.Services) -> None:
    commit(catalog, "report", b"1", deps=["orders"])
    with pytest.raises(
        core.NotFoundError, match="asset 'orders' has no stored value on tag 'main'"
    ):
        catalog.assets.locate_input("run-9", "main", "orders")
    with pytest.raises(core.NotFoundError, match="'ghost'"):
        catalog.assets.locate_input(None, "main", "x", pin_tag="ghost")
    with pytest.raises(core.NotFoundError, match="sha256:0000"):
        catalog.assets.locate_input(None, "main", "x", pin_version="sha256:" + "0" * 64)


def test_a_run_reads_and_writes_the_tag_it_is_pinned_to(catalog: core.Services) -> None:
    commit(catalog, "orders", b"1")  # pins run-1 to main
    before, files = row_counts(catalog), blob_files(catalog)
    pinned = "run 'run-1' is pinned to tag 'main', so it cannot read or write tag 'staging'"
    with pytest.raises(core.ConflictError, match=pinned):
        catalog.assets.commit_output("run-1", "staging", "orders", b"2", media_type=JSON)
    with pytest.raises(core.ConflictError, match=pinned):
        catalog.assets.locate_input("run-1", "staging", "orders")
    assert (row_counts(catalog), blob_files(catalog)) == (before, files)


@pytest.mark.parametrize("size", [1, LARGE_VALUE], ids=["small", "large"])
@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"node": ""}, "node id ''"),
        ({"deps": ["ok", "bad\x00"]}, "node id 'bad"),
        ({"tag": "a//b"}, "tag name 'a//b'"),
        ({"run_id": ""}, "run id ''"),
        ({"media_type": "nope"}, "media type 'nope'"),
        ({"content": "text"}, "content must be bytes"),
        ({"partition_key": ""}, "partition key ''"),
        ({"partition_key": 2024}, "partition key 2024"),
        ({"code_version": "v" * 256}, "code version 'vvv"),
        ({"job_name": "nightly\n"}, "job name 'nightly"),
    ],
)
def test_bad_input_changes_nothing(
    catalog: core.Services, kwargs: dict, error: str, size: int
) -> None:
    call = {"run_id": "r", "tag": "main", "node": "n", "content": b"1" * size, "media_type": JSON}
    call.update(kwargs)
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match=error):
        catalog.assets.commit_output(
            call.pop("run_id"), call.pop("tag"), call.pop("node"), call.pop("content"), **call
        )
    assert row_counts(catalog) == before
    assert blob_files(catalog) == []


def test_get_moves_pages_and_filters(catalog: core.Services) -> None:
    assert catalog.workflows.get_moves("main", None) == core.MovesPage([], 0)
    commit(catalog, "a", b"1")
    commit(catalog, "b", b"1")
    commit(catalog, "a", b"2")
    latest = catalog.workflows.get_moves("main", None)
    history = catalog.tags.get_history("main")
    assert [m.move for m in latest.moves] == history[-1:]
    assert latest.cursor == history[-1].id
    page = catalog.workflows.get_moves("main", 0, nodes=frozenset({"a"}))
    assert [m.move.id for m in page.moves] == [history[0].id, history[2].id]
    assert page.moves[1].changed_nodes == frozenset({"a"})
    assert (
        page.moves[1].version_hash
        == catalog.artifacts.get_by_id(history[2].to_target_id).version_hash
    )
    assert page.cursor == history[-1].id
    catalog.tags.delete_tag("main")
    deleted = catalog.workflows.get_moves("main", page.cursor)
    assert [(m.version_hash, m.changed_nodes) for m in deleted.moves] == [(None, frozenset())]
