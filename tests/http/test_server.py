"""The real server: `orchestrator serve` in a subprocess, driven over loopback HTTP."""

from pathlib import Path

import httpx
import pytest

from tests.http.server import serve


@pytest.mark.slow
def test_round_trip_over_real_http(database_url: str, blob_root: Path, tmp_path: Path) -> None:
    with serve(database_url, blob_root, tmp_path / "server.log") as base:
        dag = {"nodes": {"orders": {"deps": []}}}
        created = httpx.post(
            f"{base}/workflows", json={"name": "sales", "dag": dag, "tag": "team/main"}
        )
        assert created.status_code == 201, created.text
        moved = httpx.put(
            f"{base}/tags/team/prod", json={"target": "team/main", "reason": "promote"}
        )
        assert moved.status_code == 201, moved.text
        again = httpx.put(
            f"{base}/tags/team/prod", json={"target": "team/main"}, headers={"If-Match": '"7"'}
        )
        assert again.status_code == 409
        history = httpx.get(f"{base}/tags/team/prod/history").json()
        assert [(m["revision"], m["reason"]) for m in history] == [(1, "promote")]
        assert history[0]["to_target_id"] == created.json()["artifact_id"]


@pytest.mark.slow
def test_header_octets_over_real_http(database_url: str, blob_root: Path, tmp_path: Path) -> None:
    """Header bytes as they reach the server: ``\\xb2`` is ``²``, which ``str.isdigit``
    calls a digit and ``int`` refuses."""
    with serve(database_url, blob_root, tmp_path / "server.log") as base:
        dag = {"nodes": {"orders": {"deps": []}}}
        assert httpx.post(f"{base}/workflows", json={"name": "s", "dag": dag}).status_code == 201
        add = [{"op": "add", "path": "/nodes/more", "value": {"deps": []}}]
        for octets, status in ((b'"\xb2"', 409), (b"\xb2", 422), (b'W/"1"', 409)):
            answer = httpx.patch(f"{base}/workflows/main", json=add, headers={"If-Match": octets})
            assert answer.status_code == status, (octets, answer.text)
            assert answer.json()["error"]["type"] in ("conflict", "validation")
        assert httpx.get(f"{base}/tags/main").json()["revision"] == 1


@pytest.mark.slow
def test_repeated_header_lines_over_real_http(
    database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    """Two ``If-Match`` lines reach the server as two fields: both are read, as one list;
    a leading zero names no revision the server sent."""
    with serve(database_url, blob_root, tmp_path / "server.log") as base:
        dag = {"nodes": {"orders": {"deps": []}}}
        assert httpx.post(f"{base}/workflows", json={"name": "s", "dag": dag}).status_code == 201
        add = [{"op": "add", "path": "/nodes/more", "value": {"deps": []}}]
        padded = httpx.patch(f"{base}/workflows/main", json=add, headers={"If-Match": '"01"'})
        assert padded.status_code == 409, padded.text
        lines = [("If-Match", '"11"'), ("If-Match", '"1"')]
        answer = httpx.patch(f"{base}/workflows/main", json=add, headers=lines)
        assert answer.status_code == 200 and answer.headers["ETag"] == '"2"', answer.text
