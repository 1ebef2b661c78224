"""gc meets real faults: a read-only blob folder, a concurrent gc, a Ctrl-C mid-run.

gc ends in a domain error or a true report, and never leaves a catalog entry without its
bytes: a referenced blob always survives, and ``verify`` passes afterwards.
"""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

import core
from core.storage.blobstore import FolderBlobStore
from tests.faults.conftest import Tmpfs
from tests.support import workers
from tests.support.helpers import row_counts, started_pool

pytestmark = pytest.mark.faults

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")


def orchestrator_env(database_url: str, blob_root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_BLOB_ROOT": str(blob_root),
    }


def store_strays(catalog: core.Services, count: int) -> list[str]:
    """``count`` blobs nothing references (gc takes them at ``--grace 0s``)."""
    contents = [(f"stray {i}".encode(), "text/plain") for i in range(count)]
    return catalog.cas.store_contents(contents)


def no_entry_without_bytes(catalog: core.Services, cas_ids: list[str]) -> bool:
    blobs = FolderBlobStore(catalog.blob_root)
    return all(
        blobs.exists(cas_id) or catalog.cas.get_blob(cas_id, missing_ok=True) is None
        for cas_id in cas_ids
    )


def test_gc_on_a_read_only_folder_is_storage_unavailable_and_removes_nothing(
    make_tmpfs: Callable[..., Tmpfs], database_url: str
) -> None:
    tmpfs = make_tmpfs()
    root = tmpfs.path / "blobs"
    with core.connect(database_url, root) as catalog:
        value = catalog.assets.commit_output(
            "run-1", "main", "orders", b"[1, 2]", media_type="application/json"
        ).value.cas_id
        strays = store_strays(catalog, 3)
        orphan = catalog.cas.compute_hash(b"a file whose writer crashed")
        FolderBlobStore(root).put_bytes(orphan, b"a file whose writer crashed")
        old = time.time() - 2 * 3600
        os.utime(FolderBlobStore(root).path(orphan), (old, old))
        before = row_counts(catalog)
        tmpfs.read_only()

        with pytest.raises(core.StorageUnavailableError, match="Read-only file system") as raised:
            catalog.maintenance.gc(timedelta(0))
        assert f"blob folder {str(root)!r}" in str(raised.value)
        cli = subprocess.run(
            [ORCHESTRATOR, "gc", "--grace", "0s"],
            env=orchestrator_env(database_url, root),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert cli.returncode == 5, cli.stderr
        assert cli.stderr.startswith("error: cannot move blob sha256:")
        assert f"blob folder {str(root)!r}" in cli.stderr
        assert len(cli.stderr.splitlines()) == 1, cli.stderr
        assert row_counts(catalog) == before
        assert all(catalog.cas.exists(cas_id) for cas_id in [value, *strays])
        assert FolderBlobStore(root).exists(orphan)

        tmpfs.writable()
        report = catalog.maintenance.gc(timedelta(0))
        assert sorted(report.removed) == sorted([*strays, orphan])
        assert catalog.cas.get_content(value) == b"[1, 2]"
        assert catalog.maintenance.verify().problems == []


def collect_at(database_url: str, blob_root: str, start_at: float) -> tuple[list[str], int]:
    """In a pool process: run ``gc --grace 0s`` from ``start_at``; what it reports removing."""
    with core.connect(database_url, blob_root) as catalog:
        workers.wait_until(start_at)
        report = catalog.maintenance.gc(timedelta(0))
    return report.removed, report.removed_bytes


def test_two_concurrent_gcs_count_each_removed_blob_once(
    postgres_schema_url: str, blob_root: Path
) -> None:
    with core.connect(postgres_schema_url, blob_root) as catalog:
        value = catalog.assets.commit_output(
            "run-1", "main", "orders", b"[1, 2]", media_type="application/json"
        ).value.cas_id
        strays = store_strays(catalog, 500)
        stray_bytes = sum(len(f"stray {i}") for i in range(500))
        with started_pool(2) as (pool, start_at):
            runs = [
                pool.submit(collect_at, postgres_schema_url, str(blob_root), start_at)
                for _ in range(2)
            ]
            (first, first_bytes), (second, second_bytes) = [run.result() for run in runs]

        assert len(first) + len(second) == len(strays)
        assert sorted(first + second) == sorted(strays)
        assert first_bytes + second_bytes == stray_bytes
        assert not any(catalog.cas.exists(cas_id) for cas_id in strays)
        assert catalog.cas.get_content(value) == b"[1, 2]"


def test_ctrl_c_stops_gc_quietly_between_two_blobs(
    catalog: core.Services, database_url: str, blob_root: Path
) -> None:
    committed = [
        catalog.assets.commit_output(
            "run-1", "main", f"node{i}", f"[{i}]".encode(), media_type="application/json"
        ).value.cas_id
        for i in range(5)
    ]
    strays = store_strays(catalog, 600)
    files = len(strays) + len(committed) + 1  # and the document of the tag's head
    stored = blob_root / "sha256"
    env = orchestrator_env(database_url, blob_root)
    gc = subprocess.Popen(
        [ORCHESTRATOR, "gc", "--grace", "0s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while sum(1 for _ in stored.glob("*/*/*")) > files - 20:  # wait until it is removing
        assert gc.poll() is None and time.monotonic() < deadline, "gc did not start removing"
        time.sleep(0.01)
    gc.send_signal(signal.SIGINT)
    out, err = gc.communicate(timeout=60)

    assert gc.returncode == 130, err
    assert "Traceback" not in err and err == ""
    assert out == ""  # stopped before its report
    left = [cas_id for cas_id in strays if catalog.cas.get_blob(cas_id, missing_ok=True)]
    assert 0 < len(left) < len(strays)  # it stopped part way
    assert no_entry_without_bytes(catalog, strays)
    check = subprocess.run(
        [ORCHESTRATOR, "verify", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout)["problems"] == []
    for i, cas_id in enumerate(committed):
        assert catalog.cas.get_content(cas_id) == f"[{i}]".encode()
    assert sorted(catalog.maintenance.gc(timedelta(0)).removed) == sorted(left)
