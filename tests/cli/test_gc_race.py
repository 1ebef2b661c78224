"""gc running while another process stores and commits: nothing committed is lost."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import core
from tests.support import workers
from tests.support.helpers import started_pool

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")


@pytest.mark.slow
def test_gc_during_commits_loses_nothing(
    catalog: core.Services, database_url: str, blob_root: Path
) -> None:
    strays = [catalog.cas.store_content(f"stray {i}".encode()) for i in range(20)]
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_BLOB_ROOT": str(blob_root),
    }
    with started_pool(1) as (pool, start_at):
        writer = pool.submit(workers.store_then_commit, database_url, str(blob_root), 40, start_at)
        time.sleep(max(0.0, start_at - time.time()))
        removed: list[str] = []
        while not writer.done():
            result = subprocess.run(
                [ORCHESTRATOR, "gc", "--grace", "0s", "--json"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            removed += json.loads(result.stdout)["removed"]
        committed = writer.result()

    assert set(strays) <= set(removed)  # gc did collect while the writer ran
    # A value stored but not yet committed may be collected (grace 0s); its commit stores
    # it again. Once committed, it is referenced and no gc may take it:
    final = subprocess.run(
        [ORCHESTRATOR, "gc", "--grace", "0s", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not set(committed) & set(json.loads(final.stdout)["removed"])
    for cas_id in committed:
        assert catalog.cas.get_content(cas_id)  # verified read: present and intact
    check = subprocess.run(
        [ORCHESTRATOR, "verify", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["problems"] == []
    document = catalog.workflows.get_workflow_by_tag("main")
    assert {node["cas_id"] for node in document["nodes"].values()} <= set(committed)


def test_console_script_reads_the_environment(
    catalog: core.Services, database_url: str, blob_root: Path
) -> None:
    catalog.assets.commit_output("r", "main", "n", b"1", media_type="application/json")
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_BLOB_ROOT": str(blob_root),
    }
    result = subprocess.run(
        [ORCHESTRATOR, "tags", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert [tag["name"] for tag in json.loads(result.stdout)] == ["main"]
    missing = subprocess.run(
        [ORCHESTRATOR, "history", "ghost"], env=env, capture_output=True, text=True, timeout=120
    )
    assert missing.returncode == 3 and "ghost" in missing.stderr
