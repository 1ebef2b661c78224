"""Validation written once: a value one entry point refuses, every entry point refuses.

Node ids, partition keys, revisions, actors and reasons are checked by one function each
(``core.identifiers``); the core services (``create_workflow``, ``patch_workflow``,
``commit_output``), HTTP (``POST /workflows``, ``PATCH /workflows/{tag}``) and the CLI
(``orchestrator workflow create|patch``) all refuse the same values, with a
``ValidationError`` naming the value and where it is, and change nothing.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

import core
from core.cli import cli
from core.dag import validate_dag
from core.handlers.schemas import CreateWorkflowIn
from core.identifiers import check_node_id, check_partition_key
from core.routes import create_app
from tests.support.helpers import DAG, row_counts

BAD_NODE_IDS = ["a\nb", "nul\x00", "tab\tx", "bell\x07", "line\u2028sep", "", "x" * 1001]
BAD_PARTITION_KEYS = ["", "nul\x00", "x" * 1001]
BAD_REVISIONS: list[Any] = [True, False, -1, 1.0, "1", 2**31, 2**63]
JSON = "application/json"


def short(value: object) -> str:
    """A test id for ``value``."""
    return repr(value)[:16]


def state(catalog: core.Services) -> tuple[dict[str, int], str]:
    """What a refused call must leave as it was: row counts and main's document."""
    return row_counts(catalog), json.dumps(catalog.workflows.get_workflow_by_tag("main"))


@pytest.fixture
def main(catalog: core.Services) -> core.Services:
    """A catalog whose ``main`` holds ``DAG`` (revision 1)."""
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))
    return catalog


def refused(catalog: core.Services, call: Callable[[], object], *named: str) -> str:
    """Assert ``call`` raises a ValidationError naming each of ``named``, changing nothing."""
    before = state(catalog)
    with pytest.raises(core.ValidationError) as raised:
        call()
    for text in named:
        assert text in str(raised.value), (text, str(raised.value))
    assert state(catalog) == before
    return str(raised.value)


def with_node(node_id: str, **node: Any) -> dict[str, Any]:
    """``DAG`` plus one node."""
    return {"nodes": {**DAG["nodes"], node_id: {"deps": [], **node}}}


def depending_on(dep: str) -> dict[str, Any]:
    """``DAG`` plus a node ``uses`` depending on ``dep`` (listed before ``dep`` itself)."""
    return {"nodes": {"uses": {"deps": [dep]}, **DAG["nodes"], dep: {"deps": []}}}


# --- node ids ---


@pytest.mark.parametrize("bad", BAD_NODE_IDS, ids=short)
def test_create_workflow_refuses_a_node_id_commit_output_refuses(
    main: core.Services, bad: str
) -> None:
    request = core.CreateWorkflowRequest("etl", with_node(bad))
    refused(main, lambda: main.workflows.create_workflow(request), f"node id {bad!r} in nodes")
    with pytest.raises(core.ValidationError):
        main.assets.commit_output("run-1", "main", bad, b"1", media_type=JSON)


@pytest.mark.parametrize("bad", BAD_NODE_IDS, ids=short)
def test_create_workflow_refuses_such_a_node_id_in_deps(main: core.Services, bad: str) -> None:
    request = core.CreateWorkflowRequest("etl", depending_on(bad))
    refused(
        main,
        lambda: main.workflows.create_workflow(request),
        f"node id {bad!r} in deps of node 'uses'",
    )


@pytest.mark.parametrize("bad", BAD_NODE_IDS, ids=short)
def test_patch_workflow_refuses_a_patch_that_adds_such_a_node(
    main: core.Services, bad: str
) -> None:
    path = "/nodes/" + bad.replace("~", "~0").replace("/", "~1")
    patch = [{"op": "add", "path": path, "value": {"deps": []}}]
    refused(main, lambda: main.workflows.patch_workflow("main", patch), f"node id {bad!r}")


def test_patch_workflow_refuses_a_patch_that_adds_such_a_dep(main: core.Services) -> None:
    patch = [
        {"op": "add", "path": "/nodes/a\nb", "value": {"deps": []}},
        {"op": "add", "path": "/nodes/raw/deps/-", "value": "a\nb"},
    ]
    message = refused(main, lambda: main.workflows.patch_workflow("main", patch))
    assert "node id 'a\\nb' in" in message


def test_commit_output_names_a_bad_dep(main: core.Services) -> None:
    refused(
        main,
        lambda: main.assets.commit_output(
            "run-1", "main", "raw", b"1", media_type=JSON, deps=["ok", "a\nb"]
        ),
        "node id 'a\\nb' in deps",
    )


def accepted(check: Callable[[], object]) -> bool:
    """Whether ``check()`` passes (``False`` on a ``ValidationError``)."""
    try:
        check()
    except core.ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(node_id=st.text(max_size=6) | st.just("x" * 1001))
def test_a_document_takes_exactly_the_node_ids_commit_output_takes(node_id: str) -> None:
    """The one rule: ``validate_dag`` and ``check_node_id`` agree on every string."""

    as_node = accepted(lambda: validate_dag({"nodes": {node_id: {"deps": []}}}))
    as_dep = accepted(lambda: validate_dag(depending_on(node_id)))
    assert as_node == as_dep == accepted(lambda: check_node_id(node_id))


def test_watching_a_node_id_that_cannot_exist_is_refused(main: core.Services) -> None:
    """A sensor on such a node would never fire: refused where it is defined."""
    from orchestrator_dagster import tag_move_sensor  # the Dagster adapter, loaded here only

    with pytest.raises(core.ValidationError, match=r"node id 'a\\nb' in asset_keys"):
        tag_move_sensor("main", "some_job", asset_keys=["a\nb"])
    refused(
        main,
        lambda: main.workflows.get_moves("main", 0, nodes=frozenset({"raw", "a\nb"})),
        "node id 'a\\nb' in the nodes to watch",
    )


# --- partition keys inside a document ---


@pytest.mark.parametrize("bad", BAD_PARTITION_KEYS, ids=short)
def test_a_document_refuses_a_partition_key_commit_output_refuses(
    main: core.Services, bad: str
) -> None:
    request = core.CreateWorkflowRequest("etl", with_node("daily", partitions={bad: {}}))
    refused(
        main,
        lambda: main.workflows.create_workflow(request),
        f"partition key {bad!r} in node 'daily'",
    )
    refused(
        main,
        lambda: main.assets.commit_output(
            "run-1", "main", "daily", b"1", media_type=JSON, partition_key=bad
        ),
        f"partition key {bad!r}",
    )


def test_a_partition_must_be_an_object(main: core.Services) -> None:
    request = core.CreateWorkflowRequest("etl", with_node("daily", partitions={"2026-01": 5}))
    refused(main, lambda: main.workflows.create_workflow(request), "'2026-01'", "'daily'")


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=4) | st.just("x" * 1001))
def test_a_document_takes_exactly_the_partition_keys_commit_output_takes(key: str) -> None:
    in_document = accepted(lambda: validate_dag(with_node("daily", partitions={key: {}})))
    assert in_document == accepted(lambda: check_partition_key(key))


# --- the fields of a stored value inside a document ---


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"media_type": 5}, "media type 5 in node 'daily'"),
        ({"media_type": "json"}, "media type 'json' in node 'daily'"),
        ({"size": "big"}, "size 'big' in node 'daily'"),
        ({"size": True}, "size True in node 'daily'"),
        ({"size": -1}, "size -1 in node 'daily'"),
        ({"partitions": {"p": {"size": 1.5}}}, "size 1.5 in partition 'p' of node 'daily'"),
    ],
    ids=short,
)
def test_a_document_refuses_value_fields_commit_output_would_never_write(
    main: core.Services, fields: dict[str, Any], named: str
) -> None:
    cas_id = main.cas.store_content(b"1", JSON)
    request = core.CreateWorkflowRequest("etl", with_node("daily", cas_id=cas_id, **fields))
    refused(main, lambda: main.workflows.create_workflow(request), named)


def test_a_value_written_by_hand_reads_its_media_type_and_size_from_its_blob(
    main: core.Services,
) -> None:
    """A document may name a value by its cas id alone: readers take the rest from the
    blob, as ``commit_output`` would have written it."""
    cas_id = main.cas.store_content(b"[1, 2]", JSON)
    main.workflows.create_workflow(
        core.CreateWorkflowRequest("etl", with_node("daily", cas_id=cas_id))
    )
    value = main.assets.locate_input(None, "main", "daily")
    assert (value.cas_id, value.media_type, value.size) == (cas_id, JSON, 6)
    assert main.assets.read(value) == b"[1, 2]"


# --- revisions, actors, reasons ---


@pytest.mark.parametrize("bad", BAD_REVISIONS, ids=short)
def test_expected_revision_is_a_real_int_at_least_zero(main: core.Services, bad: Any) -> None:
    request = core.CreateWorkflowRequest("etl", with_node("new"), expected_revision=bad)
    refused(main, lambda: main.workflows.create_workflow(request), f"revision {bad!r}")
    patch = [{"op": "add", "path": "/nodes/new", "value": {"deps": []}}]
    refused(
        main,
        lambda: main.workflows.patch_workflow("main", patch, expected_revision=bad),
        f"revision {bad!r}",
    )


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("created_by", "nul\x00"),
        ("created_by", "x" * 256),
        ("message", "nul\x00"),
        ("message", "x" * 10_001),
    ],
    ids=short,
)
def test_actors_and_reasons_are_checked_on_create_and_patch(
    main: core.Services, field: str, bad: str
) -> None:
    request = core.CreateWorkflowRequest("etl", with_node("new"), **{field: bad})
    refused(main, lambda: main.workflows.create_workflow(request), field, repr(bad)[:20])
    patch = [{"op": "add", "path": "/nodes/new", "value": {"deps": []}}]
    refused(
        main,
        lambda: main.workflows.patch_workflow("main", patch, **{field: bad}),
        field,
        repr(bad)[:20],
    )


# --- HTTP ---


@pytest.fixture
def client(main: core.Services) -> Any:
    with TestClient(create_app(main), raise_server_exceptions=False) as client:
        yield client


def http_refused(catalog: core.Services, call: Callable[[], Any], *named: str) -> dict[str, Any]:
    """Assert the response is a 422 whose error names each of ``named``, changing nothing."""
    before = state(catalog)
    response = call()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation"
    for text in named:
        assert text in error["message"], (text, error)
    assert state(catalog) == before
    return error


@pytest.mark.parametrize("bad", BAD_NODE_IDS, ids=short)
def test_http_post_refuses_a_bad_node_id(main: core.Services, client: TestClient, bad: str) -> None:
    body = {"name": "etl", "dag": with_node(bad)}
    http_refused(main, lambda: client.post("/workflows", json=body), f"node id {bad!r} in nodes")
    body = {"name": "etl", "dag": depending_on(bad)}
    http_refused(main, lambda: client.post("/workflows", json=body), f"{bad!r} in deps")


@pytest.mark.parametrize("bad", BAD_NODE_IDS, ids=short)
def test_http_patch_refuses_a_bad_node_id(
    main: core.Services, client: TestClient, bad: str
) -> None:
    path = "/nodes/" + bad.replace("~", "~0").replace("/", "~1")
    patch = [{"op": "add", "path": path, "value": {"deps": []}}]
    http_refused(
        main, lambda: client.patch("/workflows/main", json=patch), f"node id {bad!r} in nodes"
    )


@pytest.mark.parametrize("raw", ["true", "false", "1.0", '"1"', "-1", str(2**63)])
def test_http_expected_revision_must_be_a_json_integer(
    main: core.Services, client: TestClient, raw: str
) -> None:
    """JSON ``true`` is no revision 1: a 422 naming the field, and nothing moves."""
    dag = json.dumps(with_node("new"))
    body = f'{{"name": "etl", "dag": {dag}, "expected_revision": {raw}}}'
    error = http_refused(
        main,
        lambda: client.post(
            "/workflows", content=body, headers={"content-type": "application/json"}
        ),
    )
    assert "expected_revision" in error["message"]
    assert error["field"] == "body.expected_revision"


def test_http_a_good_expected_revision_still_works(main: core.Services, client: TestClient) -> None:
    body = {"name": "etl", "dag": with_node("new"), "expected_revision": 1}
    response = client.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    assert response.json()["revision"] == 2


def test_http_schema_takes_exactly_the_revisions_the_core_takes() -> None:
    """The HTTP model calls the core's rule: no second copy to drift."""
    for value in [*BAD_REVISIONS, 0, 7, None]:
        try:
            core.identifiers.check_revision(value)
            core_ok = True
        except core.ValidationError:
            core_ok = False
        try:
            CreateWorkflowIn.model_validate({"name": "x", "dag": {}, "expected_revision": value})
            http_ok = True
        except ValueError:
            http_ok = False
        assert core_ok == http_ok, value


# --- CLI ---


@pytest.fixture
def run(database_url: str, blob_root: Path) -> Callable[..., Result]:
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, ["--database-url", database_url, "--blob-root", str(blob_root), *args]
        )

    return invoke


def cli_refused(catalog: core.Services, result_of: Callable[[], Result], *named: str) -> None:
    """Assert exit status 2 with one line naming each of ``named``, changing nothing."""
    before = state(catalog)
    result = result_of()
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for text in named:
        assert text in lines[0], (text, lines[0])
    assert state(catalog) == before


@pytest.mark.parametrize("bad", ["a\nb", "nul\x00", "bell\x07"], ids=short)
def test_cli_workflow_create_refuses_a_bad_node_id(
    main: core.Services, run: Callable[..., Result], tmp_path: Path, bad: str
) -> None:
    file = tmp_path / "dag.json"
    file.write_text(json.dumps(with_node(bad)))
    cli_refused(
        main, lambda: run("workflow", "create", str(file), "--name", "etl"), f"{bad!r} in nodes"
    )
    file.write_text(json.dumps(depending_on(bad)))
    cli_refused(
        main, lambda: run("workflow", "create", str(file), "--name", "etl"), f"{bad!r} in deps"
    )


@pytest.mark.parametrize("bad", ["a\nb", "nul\x00", "bell\x07"], ids=short)
def test_cli_workflow_patch_refuses_a_bad_node_id(
    main: core.Services, run: Callable[..., Result], tmp_path: Path, bad: str
) -> None:
    file = tmp_path / "patch.json"
    file.write_text(json.dumps([{"op": "add", "path": f"/nodes/{bad}", "value": {}}]))
    cli_refused(main, lambda: run("workflow", "patch", "main", str(file)), f"{bad!r} in nodes")


def test_cli_refuses_a_negative_expected_revision(
    main: core.Services, run: Callable[..., Result], tmp_path: Path
) -> None:
    file = tmp_path / "patch.json"
    file.write_text(json.dumps([{"op": "add", "path": "/nodes/new", "value": {}}]))
    cli_refused(
        main,
        lambda: run("workflow", "patch", "main", str(file), "--expect-revision", "-1"),
        "revision -1",
    )
