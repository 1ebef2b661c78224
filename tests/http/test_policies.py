"""`/policies` and `GET /tags/{name}/policy`, and 403 with nothing changed for every move a
tag policy refuses, on DuckDB and Postgres."""

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

import core
from tests.support.helpers import row_counts

JSON = "application/json"
ADD_Y = [{"op": "add", "path": "/nodes/y", "value": {"deps": []}}]


def commit(catalog: core.Services, run_id: str, tag: str, node: str, value: int) -> None:
    catalog.assets.commit_output(run_id, tag, node, json.dumps(value).encode(), media_type=JSON)


def state(catalog: core.Services) -> tuple[Any, ...]:
    tags = catalog.tags.list_tags()
    return tags, {t.name: catalog.tags.get_history(t.name) for t in tags}, row_counts(catalog)


@pytest.fixture
def seeded(catalog: core.Services) -> core.Services:
    """main at two versions, ``feat`` one value on, a staged run on each of v1.4 and main."""
    commit(catalog, "seed", "main", "orders", 1)
    commit(catalog, "seed", "main", "sales", 1)
    catalog.tags.create_tag("feat", catalog.tags.get_tag("main").target_id)
    commit(catalog, "f1", "feat", "orders", 2)
    catalog.runs.create_run("ci/staged-main", "main", publish="run")
    commit(catalog, "ci/staged-main", "main", "sales", 5)
    catalog.runs.create_run("ci/staged-v", "v1.4", publish="run")
    commit(catalog, "ci/staged-v", "v1.4", "sales", 7)
    return catalog


def refused(
    client: TestClient, catalog: core.Services, tag: str, pattern: str, request: httpx.Request
) -> None:
    before = state(catalog)
    response = client.send(request)
    assert response.status_code == 403, (request.method, request.url, response.text)
    error = response.json()["error"]
    assert (error["type"], error["tag"], error["pattern"]) == ("policy", tag, pattern)
    assert f"tag {tag!r}" in error["message"] and f"policy {pattern!r}" in error["message"]
    assert state(catalog) == before, (request.method, request.url)


def test_policies_are_set_listed_read_deleted_and_their_history_read(client: TestClient) -> None:
    put = client.put("/policies/release/*", json={"protected": True, "moved_by": "ann"})
    assert put.status_code == 200, put.text
    assert put.json()["pattern"] == "release/*" and put.json()["protected"] is True
    assert client.put("/policies/v%5B0-9%5D%2A", json={"immutable": True}).status_code == 200
    assert [p["pattern"] for p in client.get("/policies").json()] == ["release/*", "v[0-9]*"]
    governing = client.get("/tags/release/2.0/policy")
    assert governing.status_code == 200 and governing.json()["pattern"] == "release/*"
    assert client.get("/tags/v1.4/policy").json()["pattern"] == "v[0-9]*"
    none = client.get("/tags/main/policy")
    assert none.status_code == 404 and "'main'" in none.json()["error"]["message"]
    assert client.delete("/policies/release/*", params={"moved_by": "bob"}).status_code == 204
    history = client.get("/policies/history", params={"pattern": "release/*"}).json()
    assert [(h["new_protected"], h["changed_by"]) for h in history] == [
        (True, "ann"),
        (None, "bob"),
    ]
    assert len(client.get("/policies/history").json()) == 3
    missing = client.delete("/policies/release/*")
    assert missing.status_code == 404 and "'release/*'" in missing.json()["error"]["message"]
    bad = client.put("/policies/v[1", json={})
    assert bad.status_code == 422 and "'v[1'" in bad.json()["error"]["message"]
    flags = client.put("/policies/v*", json={"immutable": "yes"})
    assert flags.status_code == 422


def test_an_immutable_tag_refuses_every_move_with_403(
    client: TestClient, seeded: core.Services
) -> None:
    assert client.put("/policies/v*", json={"immutable": True}).status_code == 200
    created = client.put("/tags/v1.4", json={"target": "main"})  # created once: allowed
    assert created.status_code == 201, created.text
    build = client.build_request
    for request in (
        build("PUT", "/tags/v1.4", json={"target": "feat"}),
        build("PUT", "/tags/v1.4", json={"target": "feat"}, headers={"If-Match": '"1"'}),
        build("DELETE", "/tags/v1.4"),
        build("DELETE", "/tags/v1.4", headers={"If-Match": '"1"'}),
        build("POST", "/workflows", json={"name": "s", "dag": {"nodes": {}}, "tag": "v1.4"}),
        build("PATCH", "/workflows/v1.4", json=ADD_Y),
        build("POST", "/tags/v1.4/merge", json={"source": "feat"}),
        build("POST", "/runs/ci/staged-v/publish"),
        build("POST", "/runs", json={"run_id": "new", "tag": "v1.4"}),
        build("POST", "/runs", json={"run_id": "new", "tag": "v1.4", "publish": "run"}),
    ):
        refused(client, seeded, "v1.4", "v*", request)


def test_a_protected_tag_refuses_direct_moves_with_403_and_takes_publish_and_merge(
    client: TestClient, seeded: core.Services
) -> None:
    assert client.put("/policies/main", json={"protected": True}).status_code == 200
    build = client.build_request
    for request in (
        build("PUT", "/tags/main", json={"target": "feat"}),
        build("PUT", "/tags/main", json={"target": "feat"}, headers={"If-Match": '"3"'}),
        build("DELETE", "/tags/main"),
        build("POST", "/workflows", json={"name": "s", "dag": {"nodes": {}}}),
        build("PATCH", "/workflows/main", json=ADD_Y),
        build("POST", "/runs", json={"run_id": "new", "tag": "main"}),
    ):
        refused(client, seeded, "main", "main", request)
    staged = client.post("/runs", json={"run_id": "new", "tag": "main", "publish": "run"})
    assert staged.status_code == 201, staged.text
    published = client.post("/runs/ci/staged-main/publish")
    assert published.status_code == 200 and published.json()["changed"] is True
    merged = client.post("/tags/main/merge", json={"source": "feat"})
    assert merged.status_code == 200 and merged.json()["changed"] is True
