"""The HTTP API through the framework's test client, on DuckDB and Postgres."""

import io
import os
import tracemalloc

import pytest
from fastapi.testclient import TestClient

import core

DAG = {"nodes": {"orders": {"deps": []}, "revenue": {"deps": ["orders"]}}}
ADD = [{"op": "add", "path": "/nodes/report", "value": {"deps": ["revenue"]}}]


def create(client: TestClient, tag: str = "main", dag: dict = DAG) -> dict:
    response = client.post("/workflows", json={"name": "sales", "dag": dag, "tag": tag})
    assert response.status_code == 201, response.text
    return response.json()


def test_workflow_round_trip(client: TestClient) -> None:
    created = create(client)
    assert created["revision"] == 1 and created["changed"] is True
    got = client.get("/workflows/main")
    assert got.json() == DAG and got.headers["ETag"] == '"1"'
    again = client.post("/workflows", json={"name": "sales", "dag": DAG})
    assert again.status_code == 200 and again.json()["changed"] is False
    patched = client.patch("/workflows/main", json=ADD, headers={"If-Match": '"1"'})
    assert patched.status_code == 200 and patched.json()["revision"] == 2
    assert "report" in client.get("/workflows/main").json()["nodes"]


def test_stale_if_match_is_a_conflict_naming_the_current_state(client: TestClient) -> None:
    created = create(client)
    client.patch("/workflows/main", json=ADD)
    stale = client.patch(
        "/workflows/main",
        json=[{"op": "remove", "path": "/nodes/report"}],
        headers={"If-Match": "1"},
    )
    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["type"] == "conflict" and error["current_revision"] == 2
    assert error["current_target"] != created["artifact_id"]
    assert "report" in client.get("/workflows/main").json()["nodes"]


def test_tags_with_slashes(client: TestClient) -> None:
    created = create(client, tag="team/sales/main")
    tag = client.get("/tags/team/sales/main")
    assert tag.status_code == 200 and tag.json()["target_id"] == created["artifact_id"]
    history = client.get("/tags/team/sales/main/history").json()
    assert [m["reason"] for m in history] == ["create_workflow"]
    moved = client.put("/tags/team/sales/prod", json={"target": "team/sales/main"})
    assert moved.status_code == 201 and moved.json()["revision"] == 1
    assert [t["name"] for t in client.get("/tags").json()] == ["team/sales/main", "team/sales/prod"]
    artifact = client.get("/artifacts/team/sales/main")
    assert artifact.status_code == 200 and artifact.json()["id"] == created["artifact_id"]
    chain = client.get("/artifacts/team/sales/main/chain").json()
    assert [a["id"] for a in chain] == [created["artifact_id"]]


def test_run_ids_with_slashes(client: TestClient) -> None:
    create(client)
    assert client.post("/runs", json={"run_id": "ci/42"}).status_code == 201
    assert client.get("/runs/ci/42").json()["run_id"] == "ci/42"
    finished = client.post("/runs/ci/42/finish", json={"status": "success"})
    assert finished.status_code == 200 and finished.json()["status"] == "success"


def test_put_tag_compare_and_swap(client: TestClient) -> None:
    first = create(client)
    second = client.patch("/workflows/main", json=ADD).json()
    assert client.put("/tags/prod", json={"target": first["version_hash"]}).status_code == 201
    swapped = client.put(
        "/tags/prod", json={"target": "main", "reason": "promote"}, headers={"If-Match": '"1"'}
    )
    assert swapped.status_code == 200 and swapped.json()["target_id"] == second["artifact_id"]
    assert swapped.headers["ETag"] == '"2"'
    lost = client.put("/tags/prod", json={"target": "main@{1}"}, headers={"If-Match": '"1"'})
    assert lost.status_code == 409
    assert lost.json()["error"]["current_revision"] == 2
    assert lost.json()["error"]["current_target"] == second["artifact_id"]
    assert client.get("/tags/prod/history").json()[-1]["reason"] == "promote"
    assert client.delete("/tags/prod", headers={"If-Match": "1"}).status_code == 409
    deleted = client.delete(
        "/tags/prod", params={"moved_by": "ops", "reason": "retired"}, headers={"If-Match": "2"}
    )
    assert deleted.status_code == 204
    assert client.get("/tags/prod").status_code == 404
    history = client.get("/tags/prod/history").json()
    assert len(history) == 3  # history survives, naming who deleted it and why
    assert history[-1]["to_target_id"] is None
    assert (history[-1]["moved_by"], history[-1]["reason"]) == ("ops", "retired")
    client.put("/tags/scratch", json={"target": "main"})
    client.delete("/tags/scratch", params={"moved_by": "ci", "reason": "done"})
    assert client.get("/tags/scratch/history").json()[-1]["reason"] == "done"
    bad = client.delete("/tags/main", params={"moved_by": "x" * 300})
    assert bad.status_code == 422 and client.get("/tags/main").status_code == 200


def test_runs(client: TestClient, catalog: core.Services) -> None:
    created = create(client)
    run = client.post("/runs", json={"run_id": "r-1", "tag": "main", "job_name": "nightly"})
    assert run.status_code == 201 and run.json()["base_id"] == created["artifact_id"]
    again = client.post("/runs", json={"run_id": "r-1"})
    assert again.status_code == 200 and again.json() == run.json()
    assert client.get("/runs/r-1").json()["status"] == "started"
    finished = client.post("/runs/r-1/finish", json={"status": "success"})
    assert finished.json()["status"] == "success" and finished.json()["finished_at"]
    assert client.post("/runs/r-1/finish", json={"status": "failure"}).status_code == 409
    bad = client.post("/runs/r-1/finish", json={"status": "exploded"})
    assert bad.status_code == 422 and "exploded" in bad.json()["error"]["message"]
    assert client.get("/runs/ghost").status_code == 404


def test_artifacts_and_chain(client: TestClient) -> None:
    first = create(client)
    client.patch("/workflows/main", json=ADD)
    head = client.get("/artifacts/main").json()
    assert head["kind"] == "patch_set" and head["parent_id"] == first["artifact_id"]
    chain = client.get(f"/artifacts/{head['id']}/chain").json()
    assert [a["kind"] for a in chain] == ["dag_version", "patch_set"]
    assert (
        client.get(f"/artifacts/{first['version_hash'][:15]}").json()["id"]
        == (first["artifact_id"])
    )
    assert client.get("/artifacts/00000000-0000-0000-0000-000000000000").status_code == 404


def test_blobs(client: TestClient, catalog: core.Services) -> None:
    payload = bytes(range(256)) * 4
    cas_id = catalog.cas.store_content(payload, "application/x-test")
    got = client.get(f"/blobs/{cas_id}")
    assert got.status_code == 200 and got.content == payload
    assert got.headers["content-type"].startswith("application/x-test")
    assert got.headers["ETag"] == f'"{cas_id}"'
    assert "immutable" in got.headers["Cache-Control"]
    part = client.get(f"/blobs/{cas_id}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == payload[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
    tail = client.get(f"/blobs/{cas_id}", headers={"Range": "bytes=-4"})
    assert tail.content == payload[-4:]
    assert client.get(f"/blobs/{cas_id}", headers={"Range": "bytes=9999-"}).status_code == 416
    assert client.get(f"/blobs/{cas_id}", headers={"Range": "Bytes=0-1"}).status_code == 206
    for ignored in ("items=0-5", "bytes=0-1,5-6"):  # other units, several ranges: the whole
        whole = client.get(f"/blobs/{cas_id}", headers={"Range": ignored})
        assert whole.status_code == 200 and whole.content == payload, ignored
    assert client.get(f"/blobs/{cas_id}", headers={"If-None-Match": "*"}).status_code == 304
    assert (
        client.get(f"/blobs/{cas_id}", headers={"If-None-Match": f'"{cas_id}"'}).status_code == 304
    )
    assert client.get("/blobs/sha256:" + "0" * 64).status_code == 404
    bad = client.get("/blobs/sha256:zz")
    assert bad.status_code == 422 and "'sha256:zz'" in bad.json()["error"]["message"]


def test_head_of_a_blob_answers_like_get_without_the_bytes(
    client: TestClient, catalog: core.Services
) -> None:
    payload = bytes(range(256)) * 4
    cas_id = catalog.cas.store_content(payload, "application/x-test")
    for headers in ({}, {"Range": "bytes=10-19"}, {"Range": "bytes=9999-"}, {"If-None-Match": "*"}):
        got, head = (
            client.get(f"/blobs/{cas_id}", headers=headers),
            client.head(f"/blobs/{cas_id}", headers=headers),
        )
        assert head.status_code == got.status_code, headers
        assert head.content == b""
        for name in ("ETag", "Content-Length", "Content-Range", "Content-Type", "Accept-Ranges"):
            assert head.headers.get(name) == got.headers.get(name), (headers, name)
    assert client.head(f"/blobs/{cas_id}").headers["Content-Length"] == str(len(payload))
    assert client.head("/blobs/sha256:" + "0" * 64).status_code == 404
    assert client.head("/blobs/sha256:zz").status_code == 422


def test_big_blobs_stream_in_bounded_memory(client: TestClient, catalog: core.Services) -> None:
    payload = os.urandom(32 << 20)
    cas_id = catalog.cas.store_stream(io.BytesIO(payload))
    span = "bytes=1048570-3145737"  # crosses the 1 MiB chunks it is read in
    whole = client.get(f"/blobs/{cas_id}")
    assert whole.content == payload and whole.headers["Content-Length"] == str(len(payload))
    part = client.get(f"/blobs/{cas_id}", headers={"Range": span})
    assert part.status_code == 206 and part.content == payload[1048570:3145738]
    assert part.headers["Content-Length"] == str(3145738 - 1048570)
    del whole, part
    tracemalloc.start()
    try:
        tail = client.get(f"/blobs/{cas_id}", headers={"Range": "bytes=-100"})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tail.content == payload[-100:]
    assert peak < len(payload) // 4, f"serving 100 bytes of a 32 MiB blob took {peak} bytes"


def test_corrupt_blob_is_a_500_without_traceback(
    client: TestClient, catalog: core.Services, caplog: pytest.LogCaptureFixture
) -> None:
    cas_id = catalog.cas.store_content(b"precious")
    path = catalog.blob_root / "sha256" / cas_id[7:9] / cas_id[9:11] / cas_id[7:]
    path.write_bytes(b"tampered")
    response = client.get(f"/blobs/{cas_id}")
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "integrity"
    assert cas_id in response.json()["error"]["message"]
    assert str(catalog.blob_root) not in response.text  # server paths stay in its log
    assert "Traceback" not in response.text
    assert cas_id in caplog.text and str(catalog.blob_root) in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "named"),
    [
        (
            "post",
            "/workflows",
            {"name": "x", "dag": {"nodes": {"a": {"deps": ["b"]}}}},
            None,
            "'b'",
        ),
        ("post", "/workflows", {"name": "x"}, "body.dag", None),
        ("post", "/workflows", {"name": "x", "dag": DAG, "tag": "a//b"}, None, "'a//b'"),
        ("put", "/tags/a..b", {"target": "main"}, None, "'a..b'"),
        ("post", "/runs", {"run_id": ""}, None, "run id ''"),
        ("patch", "/workflows/main", {"op": "add"}, "body", None),
        (
            "patch",
            "/workflows/main",
            [{"op": "add", "path": "nodes/x", "value": 1}],
            None,
            "nodes/x",
        ),
    ],
)
def test_validation_errors_are_422_naming_the_value(
    client: TestClient, method: str, path: str, body: dict, field: str | None, named: str | None
) -> None:
    """A malformed request names its field; a bad value names itself in the message."""
    create(client)
    response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["type"] == "validation"
    assert error["field"] == field
    if named is not None:
        assert named in error["message"]


def test_bad_if_match_is_422(client: TestClient) -> None:
    create(client)
    response = client.patch("/workflows/main", json=ADD, headers={"If-Match": "latest"})
    assert response.status_code == 422 and "'latest'" in response.json()["error"]["message"]


def test_busy_catalog_is_503_with_retry_after(client: TestClient, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def busy(*args: object, **kwargs: object) -> None:
        raise core.StorageBusyError("catalog.duckdb stayed locked for more than 60s")

    monkeypatch.setattr(core.service.tag.TagService, "list_tags", busy)
    response = client.get("/tags")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["error"]["type"] == "busy"


def test_openapi_describes_routes_and_errors(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in [
        "/workflows",
        "/workflows/{tag}",
        "/runs",
        "/runs/{run_id}",
        "/runs/{run_id}/finish",
        "/tags",
        "/tags/{name}",
        "/tags/{name}/history",
        "/artifacts/{ref}",
        "/artifacts/{ref}/chain",
        "/blobs/{cas_id}",
    ]:
        assert path in paths, path
    assert paths["/tags/{name}"]["put"]["responses"]["409"]["content"]["application/json"][
        "schema"
    ]["$ref"].endswith("/ErrorBody")
    assert "ErrorBody" in spec["components"]["schemas"]
