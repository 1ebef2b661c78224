"""Inputs the property-based tests found mishandled, kept as plain regression tests."""

import pytest

import core
from tests.support.helpers import blob_files, row_counts

BASE = {"nodes": {"a": {"deps": [], "x": 1}}}


@pytest.fixture
def main(catalog: core.Services) -> core.CreateWorkflowResponse:
    return catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", BASE))


@pytest.mark.parametrize("path", ["nodes/x", "/~2", "~"])
def test_malformed_patch_pointers_are_validation_errors(
    catalog: core.Services, main: core.CreateWorkflowResponse, path: str
) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="invalid JSON Patch"):
        catalog.workflows.patch_workflow("main", [{"op": "add", "path": path, "value": 1}])
    assert row_counts(catalog) == before


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_deeply_nested_values_are_validation_errors(
    catalog: core.Services, main: core.CreateWorkflowResponse
) -> None:
    before, files = row_counts(catalog), blob_files(catalog)
    with pytest.raises(core.ValidationError, match="nest deeper"):
        catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("etl", {"nodes": {"a": {"deps": [], "x": nested(1000)}}})
        )
    with pytest.raises(core.ValidationError, match="nest deeper"):
        catalog.workflows.patch_workflow(
            "main", [{"op": "add", "path": "/nodes/a/y", "value": nested(1000)}]
        )
    assert (row_counts(catalog), blob_files(catalog)) == (before, files)


@pytest.mark.parametrize("value", [True, 1.0])
def test_one_true_and_one_point_zero_are_different_content(
    catalog: core.Services, main: core.CreateWorkflowResponse, value: object
) -> None:
    changed = catalog.workflows.create_workflow(
        core.CreateWorkflowRequest("etl", {"nodes": {"a": {"deps": [], "x": value}}})
    )
    assert changed.changed and changed.revision == 2
    assert type(catalog.workflows.get_workflow_by_tag("main")["nodes"]["a"]["x"]) is type(value)
    back = catalog.workflows.patch_workflow(
        "main", [{"op": "replace", "path": "/nodes/a/x", "value": 1}]
    )
    assert back.changed and back.revision == 3
    assert type(catalog.workflows.get_workflow_by_tag("main")["nodes"]["a"]["x"]) is int
    assert (
        catalog.workflows.get_moves("main", 0, nodes=frozenset({"a"})).moves[-1].move.revision == 3
    )


def test_update_workflow_records_a_type_only_change(
    catalog: core.Services, main: core.CreateWorkflowResponse
) -> None:
    def to_true(document: dict) -> dict:
        return {"nodes": {"a": {"deps": [], "x": True}}}

    response = catalog.workflows.update_workflow("main", to_true, name="etl")
    assert response.changed
    assert catalog.workflows.get_workflow_by_tag("main")["nodes"]["a"]["x"] is True

    def true_to_one_and_more(document: dict) -> dict:  # a type change beside a real one
        return {"nodes": {"a": {"deps": [], "x": 1, "y": "new"}}}

    catalog.workflows.update_workflow("main", true_to_one_and_more, name="etl")
    resolved = catalog.workflows.get_workflow_by_tag("main")["nodes"]["a"]
    assert type(resolved["x"]) is int and resolved["y"] == "new"


def test_bad_created_by_is_rejected_before_anything_is_stored(catalog: core.Services) -> None:
    with pytest.raises(core.ValidationError, match="created_by"):
        catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("etl", BASE, created_by="nul\x00")
        )
    assert blob_files(catalog) == []


@pytest.mark.parametrize("cas_id", ["nope", 7, "sha256:XYZ"])
def test_malformed_node_cas_ids_are_validation_errors(
    catalog: core.Services, cas_id: object
) -> None:
    with pytest.raises(core.ValidationError, match="invalid cas id"):
        catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("etl", {"nodes": {"a": {"deps": [], "cas_id": cas_id}}})
        )
    assert row_counts(catalog)["artifacts"] == 0


def test_compare_and_swap_onto_the_current_target_records_nothing(
    catalog: core.Services, main: core.CreateWorkflowResponse
) -> None:
    target = main.artifact_id
    assert catalog.tags.compare_and_swap("main", target, target)
    assert catalog.tags.compare_and_swap("main", target, target, expected_revision=1)
    assert not catalog.tags.compare_and_swap("main", target, target, expected_revision=2)
    assert len(catalog.tags.get_history("main")) == 1
    assert catalog.tags.get_tag("main").revision == 1


def test_an_output_that_cannot_be_committed_leaves_no_pin(
    catalog: core.Services, main: core.CreateWorkflowResponse
) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="cycle"):
        catalog.assets.commit_output(
            "run-x", "main", "b", b"1", media_type="application/json", deps=["b"]
        )
    assert row_counts(catalog) == before  # no run row, no snapshot


def test_a_version_with_a_bad_parent_stores_nothing(
    catalog: core.Services, main: core.CreateWorkflowResponse
) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="'not-a-uuid'"):
        catalog.artifacts.add_dag_version("etl", {"nodes": {}}, parent_id="not-a-uuid")  # type: ignore[arg-type]
    assert row_counts(catalog) == before


@pytest.mark.parametrize(
    ("change", "error", "named"),
    [
        ({"cas_id": "sha256:" + "0" * 64}, core.NotFoundError, "sha256:" + "0" * 64),
        ({"media_type": None}, core.ValidationError, "media type None"),
        ({"node": None}, core.ValidationError, "node id None"),
        ({"size": "big"}, core.ValidationError, "size 'big'"),
        ({"size": True}, core.ValidationError, "size True"),
        ({"partition_key": "\ud800"}, core.ValidationError, "partition key"),
    ],
)
def test_bad_lineage_is_rejected_by_name(
    catalog: core.Services,
    main: core.CreateWorkflowResponse,
    change: dict,
    error: type[core.OrchestratorError],
    named: str,
) -> None:
    catalog.runs.create_run("run-1")
    cas_id = catalog.cas.store_content(b"1", "application/json")
    good = {"node": "a", "partition_key": None, "cas_id": cas_id, "media_type": "a/b", "size": 1}
    before = row_counts(catalog)
    with pytest.raises(error, match=named.replace("(", r"\(")):
        catalog.runs.record_io("run-1", outputs=[core.NodeValue(**{**good, **change})])
    assert row_counts(catalog) == before


def test_text_that_no_database_can_store_is_a_validation_error(
    catalog: core.Services, main: core.CreateWorkflowResponse
) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="reason"):
        catalog.tags.create_tag("t", main.artifact_id, reason="\ud800")
    with pytest.raises(core.ValidationError, match="moved_by"):
        catalog.tags.create_or_move_tag("main", main.artifact_id, moved_by="\udcff")
    with pytest.raises(core.ValidationError, match="created_by"):
        catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("x", BASE, tag="other", created_by="\ud800")
        )
    with pytest.raises(core.ValidationError, match="move id True"):
        catalog.tags.get_moves_after("main", True)  # type: ignore[arg-type]
    with pytest.raises(core.ValidationError, match="run id 123"):
        catalog.tags.move_tag("main", main.artifact_id, run_id=123)  # type: ignore[arg-type]
    assert row_counts(catalog) == before
