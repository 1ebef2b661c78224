"""Workflows: create, patch and resolve, each in one transaction, with compaction."""

from typing import BinaryIO

import pytest

import core
from core.storage.blobstore import FolderBlobStore
from tests.support.helpers import DAG, blob_files, row_counts

ADD_NODE = [{"op": "add", "path": "/nodes/extra", "value": {"deps": ["report"]}}]


def request(dag: dict = DAG, **kwargs: object) -> core.CreateWorkflowRequest:
    return core.CreateWorkflowRequest("etl", dag, **kwargs)  # type: ignore[arg-type]


def test_commits_and_run_pins_read_back_no_blob_they_stored(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_reads(_store: FolderBlobStore, cas_id: str) -> BinaryIO:
        raise AssertionError(f"read back blob {cas_id}")

    monkeypatch.setattr(FolderBlobStore, "open", no_reads)
    catalog.workflows.create_workflow(request())  # a full version
    catalog.runs.create_run("run-1", "main")  # a run snapshot
    catalog.workflows.patch_workflow("main", ADD_NODE)  # a patch set on the version
    monkeypatch.undo()
    assert catalog.workflows.get_workflow_by_tag("main")["nodes"]["extra"] == {"deps": ["report"]}
    assert catalog.maintenance.verify().problems == []


def test_create_workflow_versions_and_moves_the_tag(catalog: core.Services) -> None:
    response = catalog.workflows.create_workflow(request(created_by="alice", message="first"))
    assert (response.tag, response.revision, response.changed) == ("main", 1, True)
    artifact = catalog.artifacts.get_by_id(response.artifact_id)
    assert artifact.kind is core.ArtifactKind.DAG_VERSION
    assert (artifact.version_hash, artifact.cas_id) == (response.version_hash, response.cas_id)
    assert artifact.metadata == {"message": "first"}
    assert catalog.workflows.get_workflow_by_tag("main") == DAG
    (move,) = catalog.tags.get_history("main")
    assert (move.to_target_id, move.moved_by, move.reason) == (artifact.id, "alice", "first")


def test_new_version_is_parented_on_the_tags_target(catalog: core.Services) -> None:
    first = catalog.workflows.create_workflow(request())
    changed = {"nodes": {**DAG["nodes"], "new": {"deps": []}}}
    second = catalog.workflows.create_workflow(request(changed))
    assert catalog.artifacts.get_by_id(second.artifact_id).parent_id == first.artifact_id
    assert second.from_target_id == first.artifact_id
    assert catalog.workflows.get_workflow_by_tag("main") == changed
    other = catalog.workflows.create_workflow(request(tag="team/sales/main"))
    assert catalog.artifacts.get_by_id(other.artifact_id).parent_id is None


def test_identical_content_changes_nothing(catalog: core.Services) -> None:
    first = catalog.workflows.create_workflow(request())
    before = row_counts(catalog)
    again = catalog.workflows.create_workflow(request())
    assert not again.changed
    assert (again.artifact_id, again.revision) == (first.artifact_id, 1)
    assert row_counts(catalog) == before


def test_expected_revision_is_honoured(catalog: core.Services) -> None:
    catalog.workflows.create_workflow(request(expected_revision=0))
    changed = {"nodes": {"only": {"deps": []}}}
    before = row_counts(catalog)
    with pytest.raises(core.ConflictError, match="revision 1, not the expected 0"):
        catalog.workflows.create_workflow(request(changed, expected_revision=0))
    with pytest.raises(core.ConflictError, match="revision 1, not the expected 5"):
        catalog.workflows.patch_workflow("main", ADD_NODE, expected_revision=5)
    assert row_counts(catalog) == before
    assert catalog.workflows.create_workflow(request(changed, expected_revision=1)).revision == 2


def test_patch_workflow_records_a_patch_set(catalog: core.Services) -> None:
    base = catalog.workflows.create_workflow(request())
    response = catalog.workflows.patch_workflow("main", ADD_NODE, created_by="bob")
    artifact = catalog.artifacts.get_by_id(response.artifact_id)
    assert artifact.kind is core.ArtifactKind.PATCH_SET
    assert (artifact.parent_id, artifact.name) == (base.artifact_id, "etl")
    assert response.revision == 2
    assert catalog.workflows.get_workflow_by_tag("main")["nodes"]["extra"] == {"deps": ["report"]}
    assert catalog.tags.get_history("main")[-1].reason == "patch_workflow"


@pytest.mark.parametrize(
    ("patch", "error"),
    [
        ([{"op": "add", "path": "/nodes/x", "value": {"deps": ["ghost"]}}], "unknown node 'ghost'"),
        ([{"op": "replace", "path": "/nodes/raw/deps", "value": ["report"]}], "cycle"),
        ([{"op": "remove", "path": "/nodes/missing"}], "does not apply"),
        ([{"op": "explode", "path": "/nodes"}], "JSON Patch"),
        ({"op": "add"}, "list of operation"),
        ([{"op": "test", "path": "/nodes/raw/deps", "value": ["x"]}], "does not apply"),
    ],
)
def test_a_patch_that_breaks_the_dag_changes_nothing(
    catalog: core.Services, patch: object, error: str
) -> None:
    catalog.workflows.create_workflow(request())
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match=error):
        catalog.workflows.patch_workflow("main", patch)  # type: ignore[arg-type]
    assert row_counts(catalog) == before
    assert catalog.workflows.get_workflow_by_tag("main") == DAG


def test_patching_a_missing_tag_is_not_found(catalog: core.Services) -> None:
    with pytest.raises(core.NotFoundError, match="'ghost'"):
        catalog.workflows.patch_workflow("ghost", ADD_NODE)
    with pytest.raises(core.NotFoundError, match="'ghost'"):
        catalog.workflows.get_workflow_by_tag("ghost")


def test_compaction_bounds_every_chain(database_url: str, blob_root: object) -> None:
    with core.connect(database_url, blob_root, compaction_bound=4) as catalog:  # type: ignore[arg-type]
        catalog.workflows.create_workflow(request())
        lengths = []
        for i in range(12):
            patch = (
                [{"op": "add", "path": "/nodes/raw/i", "value": i}]
                if i == 0
                else [{"op": "replace", "path": "/nodes/raw/i", "value": i}]
            )
            response = catalog.workflows.patch_workflow("main", patch)
            lengths.append(len(catalog.artifacts.get_patch_chain(response.artifact_id)))
        assert max(lengths) == 5
        assert lengths[:6] == [2, 3, 4, 5, 1, 2]
        assert catalog.workflows.get_workflow_by_tag("main")["nodes"]["raw"]["i"] == 11
        kinds = [
            catalog.artifacts.get_by_id(m.to_target_id).kind
            for m in catalog.tags.get_history("main")
        ]
        assert kinds.count(core.ArtifactKind.DAG_VERSION) == 3


def test_patch_depth_stays_true_when_the_cache_is_shared_with_other_tags(
    database_url: str, blob_root: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long-lived process resolves other versions between commits; the depth that
    decides compaction must still count every patch of the chain (this interleaving once
    made it count 2 of 4)."""
    monkeypatch.setattr(core.service.artifact, "RESOLVED_CACHE_SIZE", 3)
    with core.connect(database_url, blob_root) as catalog:  # type: ignore[arg-type]
        versions = [
            catalog.workflows.create_workflow(request(tag=tag)).artifact_id
            for tag in ("main", "other")
        ]

        # a tag name commits a patch on it; a number resolves that older version, as a
        # sensor or a diff in the same process would
        for step in [1, "main", 0, "main", "other", "main", 3, "other", 4, "main"]:
            if isinstance(step, int):
                catalog.artifacts.resolve(versions[step])
            else:
                patch = [{"op": "add", "path": f"/nodes/n{len(versions)}", "value": {"deps": []}}]
                versions.append(catalog.workflows.patch_workflow(step, patch).artifact_id)
        head = versions[-1]
        assert len(catalog.artifacts.get_patch_chain(head)) == 5
        assert catalog.artifacts.patch_depth(head) == 4


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (core.CreateWorkflowRequest("etl", DAG, tag="a//b"), "tag name 'a//b'"),
        (core.CreateWorkflowRequest("", DAG), "artifact name ''"),
        (core.CreateWorkflowRequest(None, DAG), "artifact name None"),  # type: ignore[arg-type]
        (core.CreateWorkflowRequest("etl", {"nodes": {"a": {"deps": ["b"]}}}), "unknown node 'b'"),
        (core.CreateWorkflowRequest("etl", DAG, expected_revision=-3), "expected revision -3"),
        ("not a request", "CreateWorkflowRequest"),
    ],
)
def test_invalid_requests_change_nothing(catalog: core.Services, bad: object, error: str) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match=error):
        catalog.workflows.create_workflow(bad)  # type: ignore[arg-type]
    assert row_counts(catalog) == before
    assert blob_files(catalog) == []


def test_invalid_patch_arguments_change_nothing(catalog: core.Services) -> None:
    catalog.workflows.create_workflow(request())
    before, files = row_counts(catalog), blob_files(catalog)
    with pytest.raises(core.ValidationError, match="invalid run id 'x"):
        catalog.workflows.patch_workflow("main", ADD_NODE, run_id="x\n")
    with pytest.raises(core.ValidationError, match="invalid created_by 'bbb"):
        catalog.workflows.patch_workflow("main", ADD_NODE, created_by="b" * 300)
    assert (row_counts(catalog), blob_files(catalog)) == (before, files)
