"""Helpers shared by the tests (not fixtures)."""

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

import core
from core.storage.blobstore import FolderBlobStore
from tests.support import workers

TABLES = ("cas_blobs", "artifacts", "blob_refs", "tags", "tag_moves", "runs", "run_io")


def row_counts(catalog: core.Services) -> dict[str, int]:
    """How many rows each catalog table holds (to prove bad input changed nothing)."""
    with catalog.database.transaction() as session:
        return {table: session.scalar(sa.text(f"SELECT count(*) FROM {table}")) for table in TABLES}


def statements_sent(catalog: core.Services) -> list[str]:
    """A list that fills with every statement the catalog sends from now on."""
    sent: list[str] = []
    event.listen(
        catalog.database.engine,
        "before_cursor_execute",
        lambda _c, _cursor, statement, *_: sent.append(statement),
    )
    return sent


def blob_files(catalog: core.Services) -> list[Path]:
    return sorted(p for p in (catalog.blob_root / "sha256").rglob("*") if p.is_file())


DAG = {
    "nodes": {
        "raw": {"deps": []},
        "clean": {"deps": ["raw"]},
        "report": {"deps": ["clean"], "owner": "analytics"},
    }
}


def before_blob_writes(monkeypatch: pytest.MonkeyPatch, before: Callable[[bytes], None]) -> None:
    """Have every blob file write call ``before(content)`` first (to fail or slow it)."""
    put_bytes = FolderBlobStore.put_bytes

    def put(store: FolderBlobStore, cas_id: str, content: bytes) -> bool:
        before(content)
        return put_bytes(store, cas_id, content)

    monkeypatch.setattr(FolderBlobStore, "put_bytes", put)


def disk_full_for(content: bytes) -> Callable[[bytes], None]:
    """A ``before_blob_writes`` hook that fails the write of ``content`` as a full disk would."""

    def check(written: bytes) -> None:
        if written == content:
            raise OSError(28, "No space left on device")

    return check


@contextlib.contextmanager
def started_pool(
    processes: int, margin: float = 1.0
) -> Iterator[tuple[ProcessPoolExecutor, float]]:
    """A pool of ``processes`` spawned processes that have all started and imported the
    catalog, and a wall-clock instant ``margin`` seconds away for their work to start at
    (``workers.wait_until``): however slow spawning is, the workers race for real."""
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        deadline = time.monotonic() + 60
        while len(_holders(pool, processes)) < processes:  # one process held two: again
            assert time.monotonic() < deadline, "the pool's processes did not start in 60 s"
        yield pool, time.time() + margin


def _holders(pool: ProcessPoolExecutor, processes: int) -> set[int]:
    """The pids of the processes that ran ``processes`` half-second holds at once."""
    return {
        future.result() for future in [pool.submit(workers.warm_up, 0.5) for _ in range(processes)]
    }


ORCHESTRATOR = str(Path(sys.executable).with_name("orchestrator"))


def run_orchestrator(
    database_url: str, blob_root: Path, *args: str, timeout: float = 20.0
) -> "subprocess.CompletedProcess[str]":
    """``orchestrator --database-url ... --blob-root ... ARGS`` in a process of its own; a
    run that has not ended within ``timeout`` seconds fails the test (it blocked)."""
    command = [ORCHESTRATOR, "--database-url", database_url, "--blob-root", str(blob_root)]
    try:
        return subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"orchestrator {' '.join(args)} still ran after {timeout:g}s: it blocked")
