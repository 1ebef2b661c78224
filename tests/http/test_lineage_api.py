"""GET /artifacts/{ref}/blame and GET /blobs/{cas_id}/lineage on both backends."""

from fastapi.testclient import TestClient

import core

JSON = "application/json"


def test_blame_and_lineage(client: TestClient, catalog: core.Services) -> None:
    orders = catalog.assets.commit_output(
        "run-1", "team/main", "orders", b"[1]", media_type=JSON, partition_key="2026-01-01"
    )
    catalog.runs.create_run("run-2", "team/main")
    catalog.runs.record_io("run-2", inputs=[orders.value])
    blame = client.get("/artifacts/team/main/blame")
    assert blame.status_code == 200, blame.text
    body = blame.json()
    assert body["ref"] == "team/main" and body["version"]["id"] == str(orders.artifact_id)
    (entry,) = body["entries"]
    assert (entry["node"], entry["partition_key"]) == ("orders", "2026-01-01")
    assert entry["since"]["id"] == str(orders.artifact_id)
    assert entry["produced_by"]["run_id"] == "run-1"
    assert entry["produced_by"]["tag"] == "team/main"
    lineage = client.get(f"/blobs/{orders.value.cas_id}/lineage")
    assert lineage.status_code == 200, lineage.text
    assert [use["run_id"] for use in lineage.json()["produced_by"]] == ["run-1"]
    assert [use["run_id"] for use in lineage.json()["read_by"]] == ["run-2"]
    limited = client.get(f"/blobs/{orders.value.cas_id}/lineage", params={"limit": 1})
    assert limited.status_code == 200


def test_errors(client: TestClient) -> None:
    bad = client.get("/blobs/sha256:abc/lineage")
    assert bad.status_code == 422 and "sha256:abc" in bad.json()["error"]["message"]
    unknown = client.get(f"/blobs/sha256:{'0' * 64}/lineage")
    assert unknown.status_code == 404
    assert client.get("/artifacts/nope/blame").status_code == 404
