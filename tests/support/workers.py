"""Functions run in child processes by the multi-process tests (importable under spawn)."""

import os
import time
import uuid

from sqlalchemy import text

import core


def warm_up(seconds: float) -> int:
    """Hold a pool process for ``seconds`` (its imports are done by now); return its pid."""
    time.sleep(seconds)
    return os.getpid()


def wait_until(start_at: float) -> None:
    """Sleep until a shared wall-clock instant so workers start together."""
    time.sleep(max(0.0, start_at - time.time()))


def create_run(url: str, blob_root: str, run_id: str, start_at: float) -> str:
    with core.connect(url, blob_root) as catalog:
        wait_until(start_at)
        return str(catalog.runs.create_run(run_id, "main", job_name="job").snapshot_id)


def swap_loop(
    url: str, blob_root: str, tag: str, targets: list[str], moves: int, start_at: float
) -> int:
    """Make ``moves`` successful compare-and-swap moves of ``tag``; return the losses."""
    pool = [uuid.UUID(t) for t in targets]
    losses = 0
    with core.connect(url, blob_root) as catalog:
        wait_until(start_at)
        done = 0
        while done < moves:
            current = catalog.tags.get_tag(tag).target_id
            new = pool[(pool.index(current) + 1 + done % (len(pool) - 1)) % len(pool)]
            if catalog.tags.compare_and_swap(tag, current, new, moved_by=f"worker:{tag}"):
                done += 1
            else:
                losses += 1
    return losses


def write_and_read_back(
    url: str, blob_root: str, worker: int, rows: int, target: str, start_at: float
) -> list[str]:
    """Create ``rows`` tags one transaction each and read each back in a new connection;
    return the names that were missing when read back."""
    missing = []
    with core.connect(url, blob_root) as catalog:
        wait_until(start_at)
        for i in range(rows):
            name = f"w{worker}/row-{i}"
            catalog.tags.create_tag(name, uuid.UUID(target))
            try:
                catalog.tags.get_tag(name)
            except core.NotFoundError:
                missing.append(name)
    return missing


def hold_catalog_lock(url: str, seconds: float, ready_path: str) -> None:
    """Hold the catalog's transaction (and so the DuckDB file lock) for ``seconds``."""
    with core.connect(url, ready_path + ".blobs") as catalog, catalog.database.transaction():
        open(ready_path, "w").close()
        time.sleep(seconds)


def first_connect(url: str, blob_root: str, start_at: float) -> int:
    """Connect (creating the schema if nobody has yet) and report the schema version."""
    wait_until(start_at)
    with core.connect(url, blob_root) as catalog, catalog.database.transaction() as session:
        return session.scalar(text("SELECT version FROM schema_version"))


def store_then_commit(url: str, blob_root: str, count: int, start_at: float) -> list[str]:
    """Store a value, then (a moment later) commit it: the window ``gc`` must respect."""
    committed = []
    with core.connect(url, blob_root) as catalog:
        wait_until(start_at)
        for i in range(count):
            content = f'{{"value": {i}, "nonce": "{uuid.uuid4()}"}}'.encode()
            catalog.cas.store_content(content, "application/json")
            time.sleep(0.02)
            result = catalog.assets.commit_output(
                "writer", "main", f"node{i % 5}", content, media_type="application/json"
            )
            committed.append(result.value.cas_id)
    return committed


def publish_runs(url: str, blob_root: str, run_ids: list[str], start_at: float) -> list[bool]:
    """Publish each of ``run_ids``; whether each moved its tag."""
    with core.connect(url, blob_root) as catalog:
        wait_until(start_at)
        return [catalog.runs.publish(run_id).changed for run_id in run_ids]
