"""DuckDB admits one process at a time: waiting, giving up, and never losing a row."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

import core
from tests.support import workers
from tests.support.helpers import DAG, started_pool


@pytest.fixture
def duckdb_catalog(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    with core.connect(url, tmp_path / "blobs") as catalog:
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))
        yield catalog


HOLD_RAW = """
import duckdb, sys, time
deadline = time.monotonic() + 10
while True:  # our catalog may still be lingering on the file: retry like any DuckDB client
    try:
        connection = duckdb.connect(sys.argv[1])
        break
    except duckdb.IOException:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""


def hold_raw_duckdb(path: str, seconds: float) -> subprocess.Popen[str]:
    """A process outside our lock protocol that keeps the DuckDB file open for ``seconds``."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_RAW, path, str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


def hold_catalog_lock(url: str, seconds: float, tmp_path: Path) -> subprocess.Popen[bytes]:
    """Another process of ours, inside a transaction (so holding the lock file)."""
    ready = tmp_path / "ready"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tests.support.workers import hold_catalog_lock;"
            " hold_catalog_lock(sys.argv[1], float(sys.argv[2]), sys.argv[3])",
            url,
            str(seconds),
            str(ready),
        ],
        cwd=Path(__file__).parent.parent.parent,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert holder.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    return holder


@pytest.mark.slow
def test_waits_for_a_foreign_process_holding_the_file(duckdb_catalog: core.Services) -> None:
    holder = hold_raw_duckdb(duckdb_catalog.database.url.database, 2.0)
    started = time.monotonic()
    assert duckdb_catalog.workflows.get_workflow_by_tag("main") == DAG
    waited = time.monotonic() - started
    assert holder.wait(10) == 0
    assert waited > 1.0


@pytest.mark.slow
def test_waits_for_another_catalog_process(duckdb_catalog: core.Services, tmp_path: Path) -> None:
    holder = hold_catalog_lock(str(duckdb_catalog.database.url), 2.0, tmp_path)
    started = time.monotonic()
    duckdb_catalog.workflows.patch_workflow(
        "main", [{"op": "add", "path": "/nodes/x", "value": {"deps": []}}]
    )
    waited = time.monotonic() - started
    assert holder.wait(10) == 0
    assert waited > 1.0
    assert "x" in duckdb_catalog.workflows.get_workflow_by_tag("main")["nodes"]


@pytest.mark.slow
def test_gives_up_past_the_budget(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    core.connect(url, tmp_path / "blobs").close()
    with core.connect(url, tmp_path / "blobs", busy_timeout=0.5) as impatient:
        holder = hold_catalog_lock(url, 3.0, tmp_path)
        with pytest.raises(core.StorageBusyError, match=r"catalog\.duckdb"):
            impatient.tags.list_tags()
        holder.wait(10)
        raw = hold_raw_duckdb(str(tmp_path / "catalog.duckdb"), 3.0)
        with pytest.raises(core.StorageBusyError, match=r"catalog\.duckdb"):
            impatient.tags.list_tags()
        raw.wait(10)
        assert impatient.tags.list_tags() == []


@pytest.mark.slow
def test_no_committed_row_is_lost_across_processes(duckdb_catalog: core.Services) -> None:
    processes, rows = 4, 30
    target = str(duckdb_catalog.tags.get_tag("main").target_id)
    url = str(duckdb_catalog.database.url)
    with started_pool(processes) as (pool, start_at):
        futures = [
            pool.submit(
                workers.write_and_read_back,
                url,
                str(duckdb_catalog.blob_root),
                worker,
                rows,
                target,
                start_at,
            )
            for worker in range(processes)
        ]
        missing = [name for future in futures for name in future.result()]
    assert missing == []
    names = {tag.name for tag in duckdb_catalog.tags.list_tags()}
    expected = {f"w{w}/row-{i}" for w in range(processes) for i in range(rows)}
    assert expected <= names
    assert len(names) == processes * rows + 1


CATALOG_TRANSACTION = """
import sys, time, core
started = time.monotonic()
with core.connect(sys.argv[1], sys.argv[2], busy_timeout=5) as catalog:
    catalog.tags.list_tags()
print(time.monotonic() - started)
"""


@pytest.mark.slow
def test_a_lingering_process_yields_to_a_queued_one(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    with core.connect(url, tmp_path / "blobs", linger=60) as lingering:
        lingering.tags.list_tags()  # keeps the connection: nobody else wants the file
        other = subprocess.run(
            [sys.executable, "-c", CATALOG_TRANSACTION, url, str(tmp_path / "blobs")],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).parent.parent.parent,
        )
        assert other.returncode == 0, other.stderr
        assert float(other.stdout) < 5  # it queued, and the lingering process let go
        assert lingering.tags.list_tags() == []  # and takes the file back when it needs it


@pytest.mark.slow
def test_an_idle_process_holds_nothing(duckdb_catalog: core.Services) -> None:
    duckdb_catalog.tags.list_tags()
    time.sleep(0.5)  # past the linger
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; duckdb.connect(sys.argv[1]).close()",
            duckdb_catalog.database.url.database,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr  # DuckDB's own lock was free: no retry
