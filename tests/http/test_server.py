"""The real server: `orchestrator serve` in a subprocess, driven over loopback HTTP."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_round_trip_over_real_http(database_url: str, blob_root: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_BLOB_ROOT": str(blob_root),
    }
    server = subprocess.Popen(
        [ORCHESTRATOR, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, server.stdout.read() if server.stdout else ""
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)

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
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
