"""The artifact catalog: kinds, version hashes, chains and resolution."""

import json
import uuid

import pytest
import sqlalchemy as sa

import core
from core.dag import canonical_json, value_changes
from tests.support.helpers import DAG, row_counts


def store_json(catalog: core.Services, value: object) -> str:
    return catalog.cas.store_content(canonical_json(value), "application/json")


def test_dag_version_round_trips(catalog: core.Services) -> None:
    cas_id = store_json(catalog, DAG)
    artifact_id = catalog.artifacts.create_dag_version(
        "etl", cas_id, created_by="alice", metadata={"k": 1}
    )
    artifact = catalog.artifacts.get_by_id(artifact_id)
    assert artifact.kind is core.ArtifactKind.DAG_VERSION
    assert (artifact.name, artifact.cas_id, artifact.parent_id) == ("etl", cas_id, None)
    assert (artifact.created_by, artifact.metadata) == ("alice", {"k": 1})
    assert catalog.artifacts.get_by_version_hash(artifact.version_hash) == artifact
    assert catalog.artifacts.resolve(artifact_id) == DAG


def test_creation_is_idempotent_and_hashes_are_deterministic(
    catalog: core.Services, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cas_id = store_json(catalog, DAG)
    first = catalog.artifacts.create_dag_version("etl", cas_id)
    assert catalog.artifacts.create_dag_version("etl", cas_id) == first
    assert row_counts(catalog)["artifacts"] == 1
    child = catalog.artifacts.create_dag_version("etl", cas_id, parent_id=first)
    assert child != first

    other_root = tmp_path_factory.mktemp("other")
    with core.connect(f"duckdb:///{other_root / 'c.duckdb'}", other_root / "blobs") as other:
        again = other.artifacts.create_dag_version("etl", store_json(other, DAG))
        again_child = other.artifacts.create_dag_version(
            "etl", store_json(other, DAG), parent_id=again
        )
        assert other.artifacts.get_by_id(again).version_hash == (
            catalog.artifacts.get_by_id(first).version_hash
        )
        assert other.artifacts.get_by_id(again_child).version_hash == (
            catalog.artifacts.get_by_id(child).version_hash
        )


def test_kind_is_part_of_the_version_hash(catalog: core.Services) -> None:
    cas_id = store_json(catalog, {"run_id": "r"})
    base = catalog.artifacts.create_dag_version("etl", store_json(catalog, DAG))
    snapshot = catalog.artifacts.create_run_snapshot("r", cas_id, parent_id=base)
    artifact = catalog.artifacts.get_by_id(snapshot)
    assert artifact.kind is core.ArtifactKind.RUN_SNAPSHOT
    assert artifact.parent_id == base
    assert catalog.artifacts.resolve(snapshot) == DAG


def make_chain(catalog: core.Services, length: int) -> list[uuid.UUID]:
    ids = [catalog.artifacts.create_dag_version("etl", store_json(catalog, DAG))]
    for i in range(length):
        patch = [{"op": "add", "path": f"/nodes/n{i}", "value": {"deps": ["raw"]}}]
        ids.append(
            catalog.artifacts.create_patch_set("etl", store_json(catalog, patch), parent_id=ids[-1])
        )
    return ids


def test_patch_chain_is_one_recursive_query(catalog: core.Services) -> None:
    ids = make_chain(catalog, 6)
    statements: list[str] = []

    def record(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    with catalog.database.transaction() as session:
        engine = session.get_bind()
        sa.event.listen(engine, "before_cursor_execute", record)
        try:
            chain = catalog.artifacts.get_patch_chain(ids[-1])
        finally:
            sa.event.remove(engine, "before_cursor_execute", record)
    assert [a.id for a in chain] == ids
    assert len(statements) == 1
    assert "RECURSIVE" in statements[0].upper()


def test_chain_stops_at_the_nearest_dag_version(catalog: core.Services) -> None:
    ids = make_chain(catalog, 2)
    full = catalog.artifacts.create_dag_version(
        "etl", store_json(catalog, catalog.artifacts.resolve(ids[-1])), parent_id=ids[-1]
    )
    patch = [{"op": "remove", "path": "/nodes/n0"}]
    head = catalog.artifacts.create_patch_set("etl", store_json(catalog, patch), parent_id=full)
    assert [a.id for a in catalog.artifacts.get_patch_chain(head)] == [full, head]
    resolved = catalog.artifacts.resolve(head)
    assert set(resolved["nodes"]) == {"raw", "clean", "report", "n1"}


def test_resolve_applies_every_patch_in_order(catalog: core.Services) -> None:
    ids = make_chain(catalog, 3)
    resolved = catalog.artifacts.resolve(ids[-1])
    assert set(resolved["nodes"]) == {"raw", "clean", "report", "n0", "n1", "n2"}
    assert set(catalog.artifacts.resolve(ids[1])["nodes"]) == {"raw", "clean", "report", "n0"}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"nodes": {"a": {"deps": ["ghost"]}}}, "node 'a' depends on unknown node 'ghost'"),
        ({"nodes": {"a": {"deps": ["b"]}, "b": {"deps": ["a"]}}}, "cycle through node 'a'"),
        ({"nodes": {"a": {"deps": ["a"]}}}, "cycle through node 'a'"),
        ({"nodes": {"a": {"deps": "b"}}}, "node 'a'"),
        ({"nodes": {"a": "not an object"}}, "node 'a'"),
        ({"nodes": []}, "'nodes' object"),
        ([1, 2], "'nodes' object"),
    ],
)
def test_invalid_dag_documents_are_rejected(
    catalog: core.Services, document: object, message: str
) -> None:
    cas_id = store_json(catalog, document)
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match=message):
        catalog.artifacts.create_dag_version("etl", cas_id)
    assert row_counts(catalog) == before


def test_non_json_values_are_named(catalog: core.Services) -> None:
    with pytest.raises(core.ValidationError, match=r"node 'a'.*set"):
        catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("etl", {"nodes": {"a": {"deps": [], "x": {1, 2}}}})
        )
    with pytest.raises(core.ValidationError, match=r"node 'a'.*nan"):
        catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("etl", {"nodes": {"a": {"deps": [], "x": float("nan")}}})
        )
    assert row_counts(catalog)["artifacts"] == 0


def test_content_that_is_not_json_is_rejected(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"\xff\xfe not json")
    with pytest.raises(core.ValidationError, match=cas_id):
        catalog.artifacts.create_dag_version("etl", cas_id)


def test_patch_sets_need_a_parent_and_must_yield_a_dag(catalog: core.Services) -> None:
    base = catalog.artifacts.create_dag_version("etl", store_json(catalog, DAG))
    dangling = store_json(catalog, [{"op": "add", "path": "/nodes/x", "value": {"deps": ["y"]}}])
    not_a_patch = store_json(catalog, {"op": "add"})
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="parent"):
        catalog.artifacts.create_patch_set("etl", dangling, parent_id=None)  # type: ignore[arg-type]
    with pytest.raises(core.ValidationError, match="unknown node 'y'"):
        catalog.artifacts.create_patch_set("etl", dangling, parent_id=base)
    with pytest.raises(core.ValidationError, match="JSON Patch"):
        catalog.artifacts.create_patch_set("etl", not_a_patch, parent_id=base)
    assert row_counts(catalog) == before


def test_unknown_and_malformed_ids(catalog: core.Services) -> None:
    unknown = uuid.uuid4()
    cas_id = store_json(catalog, DAG)
    for call in (
        lambda: catalog.artifacts.get_by_id(unknown),
        lambda: catalog.artifacts.get_patch_chain(unknown),
        lambda: catalog.artifacts.resolve(unknown),
        lambda: catalog.artifacts.create_dag_version("etl", cas_id, parent_id=unknown),
    ):
        with pytest.raises(core.NotFoundError, match=str(unknown)):
            call()
    with pytest.raises(core.NotFoundError, match="sha256:0000"):
        catalog.artifacts.get_by_version_hash("sha256:" + "0" * 64)
    with pytest.raises(core.ValidationError, match="'nope'"):
        catalog.artifacts.get_by_id("nope")  # type: ignore[arg-type]
    with pytest.raises(core.ValidationError, match="'sha256:xyz'"):
        catalog.artifacts.get_by_version_hash("sha256:xyz")
    with pytest.raises(core.NotFoundError, match="sha256:1111"):
        catalog.artifacts.create_dag_version("etl", "sha256:" + "1" * 64)
    assert row_counts(catalog)["artifacts"] == 0


@pytest.mark.parametrize("name", ["", "x" * 256, "tab\there", None])
def test_bad_names_and_metadata(catalog: core.Services, name: object) -> None:
    cas_id = store_json(catalog, DAG)
    with pytest.raises(core.ValidationError, match="artifact name"):
        catalog.artifacts.create_dag_version(name, cas_id)  # type: ignore[arg-type]
    with pytest.raises(core.ValidationError, match="metadata"):
        catalog.artifacts.create_dag_version("etl", cas_id, metadata=["x"])  # type: ignore[arg-type]
    assert row_counts(catalog)["artifacts"] == 0


def test_metadata_is_stored_as_json(catalog: core.Services) -> None:
    meta = {"nested": {"list": [1, "two", None]}, "unicode": "é"}
    artifact_id = catalog.artifacts.create_dag_version(
        "etl", store_json(catalog, DAG), metadata=meta
    )
    assert catalog.artifacts.get_by_id(artifact_id).metadata == json.loads(json.dumps(meta))


def test_value_changes_lists_each_stored_value_that_differs() -> None:
    a, b, c = ("sha256:" + digit * 64 for digit in "abc")
    before = {"deps": [], "cas_id": a, "partitions": {"2026-01": {"cas_id": b}}}
    after = {
        "deps": ["x"],
        "cas_id": a,
        "partitions": {"2026-01": {"cas_id": c}, "2026-02": {"cas_id": a}},
    }
    assert value_changes(before, after) == [("2026-01", b, c), ("2026-02", None, a)]
    assert value_changes(None, {"deps": [], "cas_id": a}) == [(None, None, a)]
    assert value_changes({"deps": [], "cas_id": a}, None) == [(None, a, None)]
    assert value_changes({"deps": []}, {"deps": ["x"]}) == []
