"""Refs: tags, reflog positions, hash prefixes and ids."""

import pytest

import core
from tests.support.fakes import FakeCatalog


def test_refs_resolve_by_tag_position_hash_and_id(fake: FakeCatalog) -> None:
    workflows, refs = fake.services.workflows, fake.services.refs
    first = workflows.create_workflow(core.CreateWorkflowRequest("w", {"nodes": {}}))
    second = workflows.patch_workflow(
        "main", [{"op": "add", "path": "/nodes/a", "value": {"deps": []}}]
    )
    assert refs.resolve("main").id == second.artifact_id
    assert refs.resolve("main@{1}").id == first.artifact_id
    assert refs.resolve(first.version_hash[len("sha256:") :][:12]).id == first.artifact_id
    assert refs.resolve(str(second.artifact_id)).id == second.artifact_id
    with pytest.raises(core.NotFoundError, match=r"no position @\{5\}"):
        refs.resolve("main@{5}")
    with pytest.raises(core.NotFoundError, match="unknown ref 'nope'"):
        refs.resolve("nope")
