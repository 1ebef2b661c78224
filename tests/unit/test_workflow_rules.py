"""Workflow commits: changes, no-ops, conflicts, compaction, and their one commit."""

import pytest

import core
from core.repository.commit_store import RepositoryCommitStore
from core.storage.commit_record import CommitRecord
from tests.support.fakes import FakeCatalog


def dag(*nodes: str) -> dict[str, object]:
    return {"nodes": {node: {"deps": []} for node in nodes}}


def add(node: str) -> list[dict[str, object]]:
    return [{"op": "add", "path": f"/nodes/{node}", "value": {"deps": []}}]


def test_a_commit_is_one_unit_of_work_committed_once(fake: FakeCatalog) -> None:
    opened, commits = len(fake.uow.opened), len(fake.uow.commits)
    fake.services.workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    assert len(fake.uow.opened) == opened + 1
    assert len(fake.uow.commits) == commits + 1


def test_same_content_changes_nothing(fake: FakeCatalog) -> None:
    workflows = fake.services.workflows
    first = workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    again = workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    assert not again.changed and again.artifact_id == first.artifact_id
    assert again.revision == 1
    assert len(fake.services.tags.get_history("main")) == 1


def test_a_stale_expected_revision_is_a_conflict_and_commits_nothing(fake: FakeCatalog) -> None:
    workflows = fake.services.workflows
    workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    commits = len(fake.uow.commits)
    with pytest.raises(core.ConflictError, match="revision 1, not the expected 5"):
        workflows.patch_workflow("main", add("b"), expected_revision=5)
    assert len(fake.uow.commits) == commits
    assert fake.uow.opened[-1].committed is False


def test_a_patch_that_breaks_the_dag_changes_nothing(fake: FakeCatalog) -> None:
    workflows = fake.services.workflows
    workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    state = fake.uow.state
    bad = [{"op": "add", "path": "/nodes/b", "value": {"deps": ["missing"]}}]
    with pytest.raises(core.ValidationError):
        workflows.patch_workflow("main", bad)
    assert fake.uow.state is state
    assert workflows.get_workflow_by_tag("main") == dag("a")


def test_patches_compact_into_a_full_version_at_the_bound(fake: FakeCatalog) -> None:
    """The fake catalog's bound is 3 patch sets above a dag_version."""
    workflows, artifacts = fake.services.workflows, fake.services.artifacts
    workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    kinds = []
    for node in "bcdef":
        head = workflows.patch_workflow("main", add(node)).artifact_id
        kinds.append(artifacts.get_by_id(head).kind)
    patch, full = core.ArtifactKind.PATCH_SET, core.ArtifactKind.DAG_VERSION
    assert kinds == [patch, patch, patch, full, patch]
    assert artifacts.patch_depth(head) == 1
    assert workflows.get_workflow_by_tag("main") == dag(*"abcdef")


def test_a_lost_race_is_retried_on_the_new_head(
    fake: FakeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflows = fake.services.workflows
    workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    apply = RepositoryCommitStore.apply
    losses: list[CommitRecord] = []

    def racing(store: RepositoryCommitStore, record: CommitRecord) -> int | None:
        if not losses:  # another writer moved the tag first
            losses.append(record)
            return None
        return apply(store, record)

    monkeypatch.setattr(RepositoryCommitStore, "apply", racing)
    commits, rollbacks = len(fake.uow.commits), fake.uow.rollbacks
    result = workflows.patch_workflow("main", add("b"))
    assert result.changed and result.revision == 2
    assert (len(fake.uow.commits), fake.uow.rollbacks) == (commits + 1, rollbacks + 1)


def test_with_an_expected_revision_a_lost_race_is_not_retried(
    fake: FakeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflows = fake.services.workflows
    workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    calls: list[str | None] = []

    def lose(store: RepositoryCommitStore, record: CommitRecord) -> int | None:
        calls.append(record.swap and record.swap.tag)
        return None

    monkeypatch.setattr(RepositoryCommitStore, "apply", lose)
    with pytest.raises(core.ConflictError, match=r"'main' moved .*expected revision 1"):
        workflows.patch_workflow("main", add("b"), expected_revision=1)
    assert calls == ["main"]


def test_get_moves_reports_the_changed_nodes(fake: FakeCatalog) -> None:
    workflows = fake.services.workflows
    workflows.create_workflow(core.CreateWorkflowRequest("w", dag("a")))
    workflows.patch_workflow("main", add("b"))
    page = workflows.get_moves("main", 0)
    assert [move.changed_nodes for move in page.moves] == [frozenset({"a"}), frozenset({"b"})]
    assert workflows.get_moves("main", 0, nodes=frozenset({"b"})).cursor == page.cursor
