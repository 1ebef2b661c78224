"""`POST /tags/{name}/merge`, `POST /runs/{id}/publish` and `GET /runs/{id}` of a
publish="run" run, on DuckDB and Postgres."""

import json
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

import core
from tests.http.server import serve

JSON = "application/json"
RUN = "ci/6f1c2a9e-1111"
"""A publish="run" run whose id holds a slash, as route paths must take."""


def commit(
    catalog: core.Services, run_id: str, tag: str, node: str, value: int, key: str | None = None
) -> core.OutputCommit:
    return catalog.assets.commit_output(
        run_id, tag, node, json.dumps(value).encode(), media_type=JSON, partition_key=key
    )


def value(catalog: core.Services, ref: str, node: str, key: str | None = None) -> int:
    document = catalog.artifacts.resolve(catalog.refs.resolve(ref).id)
    entry = document["nodes"][node]
    if key is not None:
        entry = entry["partitions"][key]
    return int(json.loads(catalog.cas.get_content(entry["cas_id"])))


@pytest.fixture
def branched(catalog: core.Services) -> core.Services:
    """main holds orders=1 and sales[p1]=1, sales[p2]=1; team/feat starts there."""
    commit(catalog, "seed", "main", "orders", 1)
    commit(catalog, "seed", "main", "sales", 1, "p1")
    commit(catalog, "seed", "main", "sales", 1, "p2")
    catalog.tags.create_tag("team/feat", catalog.tags.get_tag("main").target_id)
    return catalog


def test_merge_fast_forwards(client: TestClient, branched: core.Services) -> None:
    before = branched.tags.get_tag("main")
    staged = commit(branched, "f1", "team/feat", "orders", 2)
    merged = client.post("/tags/main/merge", json={"source": "team/feat", "reason": "land"})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["fast_forward"] is True and body["changed"] is True
    assert body["to_target_id"] == str(staged.artifact_id)
    assert body["from_target_id"] == str(before.target_id)
    assert body["changed_nodes"] == ["orders"] and body["dry_run"] is False
    assert body["revision"] == before.revision + 1
    assert merged.headers["ETag"] == f'"{before.revision + 1}"'
    assert branched.tags.get_tag("main").target_id == staged.artifact_id
    assert branched.tags.get_history("main")[-1].reason == "land"
    again = client.post("/tags/main/merge", json={"source": "team/feat"}).json()
    assert again["changed"] is False and again["revision"] == before.revision + 1


def test_merge_into_a_tag_with_slashes_writes_a_merge_version(
    client: TestClient, branched: core.Services
) -> None:
    feat = commit(branched, "f1", "team/feat", "sales", 2, "p1")
    main = commit(branched, "m1", "main", "sales", 3, "p2")
    merged = client.post("/tags/team/feat/merge", json={"source": "main", "moved_by": "ci"})
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["fast_forward"] is False and body["changed_nodes"] == ["sales"]
    assert body["to_target_id"] not in (str(feat.artifact_id), str(main.artifact_id))
    merge_version = branched.artifacts.get_by_id(branched.tags.get_tag("team/feat").target_id)
    assert str(merge_version.id) == body["to_target_id"]
    assert (merge_version.parent_id, merge_version.merged_id) == (
        feat.artifact_id,
        main.artifact_id,
    )
    assert value(branched, "team/feat", "sales", "p1") == 2
    assert value(branched, "team/feat", "sales", "p2") == 3
    assert branched.tags.get_history("team/feat")[-1].moved_by == "ci"


def test_a_conflict_is_409_naming_node_and_partition(
    client: TestClient, branched: core.Services
) -> None:
    commit(branched, "f1", "team/feat", "sales", 2, "p1")
    commit(branched, "f1", "team/feat", "orders", 2)
    commit(branched, "m1", "main", "sales", 3, "p1")
    commit(branched, "m1", "main", "orders", 3)
    before = branched.tags.get_tag("main")
    for dry_run in (False, True):
        refused = client.post("/tags/main/merge", json={"source": "team/feat", "dry_run": dry_run})
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["type"] == "conflict" and "sales[p1]" in error["message"]
        assert error["conflicts"] == [
            {"node": "orders", "partition_key": None},
            {"node": "sales", "partition_key": "p1"},
        ]
    assert branched.tags.get_tag("main") == before


def test_dry_run_moves_nothing(client: TestClient, branched: core.Services) -> None:
    commit(branched, "f1", "team/feat", "sales", 2, "p1")
    commit(branched, "m1", "main", "orders", 3)
    before = branched.tags.get_tag("main")
    preview = client.post("/tags/main/merge", json={"source": "team/feat", "dry_run": True})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["dry_run"] is True and body["changed"] is True
    assert body["fast_forward"] is False and body["changed_nodes"] == ["sales"]
    assert body["to_target_id"] is None and body["revision"] is None
    assert body["from_target_id"] == str(before.target_id)
    assert branched.tags.get_tag("main") == before
    assert len(branched.tags.get_history("main")) == before.revision


def test_expected_target_mismatch_is_409_naming_the_current_state(
    client: TestClient, branched: core.Services
) -> None:
    stale = branched.tags.get_tag("main")
    commit(branched, "f1", "team/feat", "orders", 2)
    commit(branched, "m1", "main", "sales", 2, "p1")
    before = branched.tags.get_tag("main")
    for dry_run in (False, True):
        lost = client.post(
            "/tags/main/merge",
            json={
                "source": "team/feat",
                "expected_target_id": str(stale.target_id),
                "dry_run": dry_run,
            },
        )
        assert lost.status_code == 409, lost.text
        error = lost.json()["error"]
        assert error["current_revision"] == before.revision
        assert error["current_target"] == str(before.target_id)
    assert branched.tags.get_tag("main") == before
    won = client.post(
        "/tags/main/merge",
        json={"source": "team/feat", "expected_target_id": str(before.target_id)},
    )
    assert won.status_code == 200 and won.json()["revision"] == before.revision + 1


def test_merge_refusals(client: TestClient, branched: core.Services) -> None:
    assert client.post("/tags/main/merge", json={"source": "nope"}).status_code == 404
    assert client.post("/tags/main/merge", json={"source": "main@{x}"}).status_code == 422
    assert client.post("/tags/main/merge", json={}).status_code == 422
    assert client.post("/tags/main/merge", json={"source": "main", "x": 1}).status_code == 422


def test_publish_fast_forwards(client: TestClient, branched: core.Services) -> None:
    created = client.post("/runs", json={"run_id": RUN, "publish": "run"})
    assert created.status_code == 201 and created.json()["publish"] == "run"
    staged = commit(branched, RUN, "main", "orders", 2)
    before = branched.tags.get_tag("main")
    assert value(branched, "main", "orders") == 1  # staged: main does not see it
    published = client.post(f"/runs/{RUN}/publish", json={"reason": "checked", "moved_by": "me"})
    assert published.status_code == 200, published.text
    assert published.json() == {
        "run_id": RUN,
        "tag": "main",
        "from_target_id": str(before.target_id),
        "to_target_id": str(staged.artifact_id),
        "revision": before.revision + 1,
        "fast_forward": True,
        "changed": True,
    }
    last = branched.tags.get_history("main")[-1]
    assert (last.run_id, last.reason, last.moved_by) == (RUN, "checked", "me")


def test_publish_after_another_run_moved_the_tag(
    client: TestClient, branched: core.Services
) -> None:
    branched.runs.create_run(RUN, "main", publish="run")
    staged = commit(branched, RUN, "main", "orders", 2)
    other = commit(branched, "other", "main", "sales", 5, "p1")
    published = client.post(f"/runs/{RUN}/publish")  # no body: it is optional
    assert published.status_code == 200, published.text
    body = published.json()
    assert body["fast_forward"] is False and body["changed"] is True
    assert body["to_target_id"] not in (str(staged.artifact_id), str(other.artifact_id))
    assert body["revision"] == other.revision + 1
    assert (value(branched, "main", "orders"), value(branched, "main", "sales", "p1")) == (2, 5)


def test_publish_twice_moves_once(client: TestClient, branched: core.Services) -> None:
    branched.runs.create_run(RUN, "main", publish="run")
    commit(branched, RUN, "main", "orders", 2)
    first = client.post(f"/runs/{RUN}/publish").json()
    second = client.post(f"/runs/{RUN}/publish").json()
    assert first["changed"] is True and second["changed"] is False
    assert (second["to_target_id"], second["revision"]) == (
        first["to_target_id"],
        first["revision"],
    )
    assert [m.run_id for m in branched.tags.get_history("main")].count(RUN) == 1


def test_publish_refusals(client: TestClient, branched: core.Services) -> None:
    output_mode = client.post("/runs/seed/publish")
    assert output_mode.status_code == 422
    assert "publish='output'" in output_mode.json()["error"]["message"]
    missing = client.post("/runs/ghost/publish")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    assert client.post("/runs", json={"run_id": "r", "publish": "later"}).status_code == 422
    branched.runs.create_run(RUN, "main", publish="run")
    commit(branched, RUN, "main", "sales", 2, "p2")
    commit(branched, "other", "main", "sales", 3, "p2")
    before = branched.tags.get_tag("main")
    conflict = client.post(f"/runs/{RUN}/publish")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["conflicts"] == [{"node": "sales", "partition_key": "p2"}]
    assert branched.tags.get_tag("main") == before


def test_get_run_includes_publish_head_and_outcome(
    client: TestClient, branched: core.Services
) -> None:
    assert client.get("/runs/seed").json()["publish"] == "output"
    branched.runs.create_run(RUN, "main", publish="run")
    fresh = client.get(f"/runs/{RUN}").json()
    assert (fresh["publish"], fresh["head_id"], fresh["outcome"]) == ("run", None, None)
    staged = commit(branched, RUN, "main", "sales", 2, "p2")
    commit(branched, "other", "main", "sales", 3, "p2")
    assert client.post(f"/runs/{RUN}/publish").status_code == 409
    shown = client.get(f"/runs/{RUN}").json()
    assert shown["head_id"] == str(staged.artifact_id)
    assert shown["outcome"] == {
        "state": "conflict",
        "revision": None,
        "to_target_id": None,
        "checks": [],
        "conflicts": [{"node": "sales", "partition_key": "p2"}],
    }
    branched.runs.create_run("ci/second", "main", publish="run")
    landed = commit(branched, "ci/second", "main", "orders", 9)
    published = client.post("/runs/ci/second/publish").json()
    outcome = client.get("/runs/ci/second").json()["outcome"]
    assert outcome["state"] == "published" and outcome["revision"] == published["revision"]
    assert outcome["to_target_id"] == str(landed.artifact_id)


def test_run_refs_name_the_staged_head(client: TestClient, branched: core.Services) -> None:
    base = branched.tags.get_tag("main").target_id
    branched.runs.create_run(RUN, "main", publish="run")
    assert client.get(f"/artifacts/run:{RUN}").json()["id"] == str(base)
    staged = commit(branched, RUN, "main", "orders", 2)
    assert client.get(f"/artifacts/run:{RUN}").json()["id"] == str(staged.artifact_id)
    assert client.get("/artifacts/run:ghost").status_code == 404
    merged = client.post("/tags/main/merge", json={"source": f"run:{RUN}"}).json()
    assert merged["fast_forward"] is True and merged["to_target_id"] == str(staged.artifact_id)


@pytest.mark.slow
def test_publish_and_merge_over_real_http(
    database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    with core.connect(database_url, blob_root) as catalog:
        commit(catalog, "seed", "main", "orders", 1)
        catalog.tags.create_tag("team/feat", catalog.tags.get_tag("main").target_id)
        commit(catalog, "f1", "team/feat", "orders", 2)
        commit(catalog, "m1", "main", "orders", 3)
        catalog.runs.create_run(RUN, "main", publish="run")
        commit(catalog, RUN, "main", "sales", 1, "p1")
    with serve(database_url, blob_root, tmp_path / "server.log") as base:
        conflict = httpx.post(f"{base}/tags/main/merge", json={"source": "team/feat"})
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["error"]["conflicts"] == [{"node": "orders", "partition_key": None}]
        published = httpx.post(f"{base}/runs/{RUN}/publish")
        assert published.status_code == 200, published.text
        assert published.json()["fast_forward"] is True
        assert httpx.get(f"{base}/runs/{RUN}").json()["outcome"]["state"] == "published"
    with core.connect(database_url, blob_root) as catalog:
        assert value(catalog, "main", "sales", "p1") == 1
        assert value(catalog, "main", "orders") == 3
