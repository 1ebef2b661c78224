"""gc: what it removes and what it keeps, including files the catalog never recorded."""

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

import core
from core.storage.blobstore import FolderBlobStore


def backdate(path: os.PathLike[str], hours: float) -> None:
    then = time.time() - hours * 3600
    os.utime(path, (then, then))


def orphan_file(catalog: core.Services, content: bytes, hours: float) -> Path:
    """A blob file with no catalog row (its writer crashed, or has not committed yet),
    last stored ``hours`` ago."""
    blobs = FolderBlobStore(catalog.blob_root)
    cas_id = catalog.cas.compute_hash(content)
    blobs.put_bytes(cas_id, content)
    backdate(blobs.path(cas_id), hours=hours)
    return blobs.path(cas_id)


def test_gc_removes_old_orphan_files_at_the_default_grace(catalog: core.Services) -> None:
    """A crash between a blob file's write and its row leaves an orphan file."""
    blobs = FolderBlobStore(catalog.blob_root)
    old, young = b"written, then the writer crashed", b"written, its row not yet committed"
    old_id, young_id = catalog.cas.compute_hash(old), catalog.cas.compute_hash(young)
    blobs.put_bytes(old_id, old)
    blobs.put_bytes(young_id, young)
    backdate(blobs.path(old_id), hours=2)
    kept_value = catalog.cas.store_content(b"recorded, unreferenced, recent")

    report = catalog.maintenance.gc()  # grace: one hour

    assert report.removed == [old_id]
    assert report.removed_bytes == len(old)
    assert report.kept_recent == 2  # the recorded blob and the young orphan
    assert not blobs.path(old_id).exists()
    assert blobs.path(young_id).exists()
    assert catalog.cas.get_content(kept_value) == b"recorded, unreferenced, recent"


def test_gc_keeps_orphans_younger_than_an_hour_even_with_no_grace(
    catalog: core.Services,
) -> None:
    path = orphan_file(catalog, b"its writer may still record it", hours=0.5)
    kept = catalog.maintenance.gc(timedelta(0))
    assert (kept.removed, kept.kept_recent) == ([], 1)
    backdate(path, hours=1.5)
    assert catalog.maintenance.gc(timedelta(0)).removed == [f"sha256:{path.name}"]


def test_verify_sets_a_corrupt_file_aside_so_storing_again_repairs_it(
    catalog: core.Services,
) -> None:
    result = catalog.assets.commit_output(
        "run-1", "main", "orders", b"[1, 2]", media_type="application/json"
    )
    blobs = FolderBlobStore(catalog.blob_root)
    blobs.path(result.value.cas_id).write_bytes(b"[1, 3]")  # same size: bit rot
    (problem,) = catalog.maintenance.verify().problems
    assert (problem.cas_id, problem.problem, problem.tags) == (
        result.value.cas_id,
        "corrupt",
        ["main"],
    )
    assert (blobs.root / "tmp" / f"{result.value.cas_id[7:]}.corrupt").read_bytes() == b"[1, 3]"
    catalog.cas.store_content(b"[1, 2]", "application/json")
    assert catalog.maintenance.verify().problems == []


def test_gc_leaves_files_that_are_not_blobs_alone(catalog: core.Services) -> None:
    stray = catalog.blob_root / "sha256" / "aa" / "cc" / "notes.txt"
    stray.parent.mkdir(parents=True)
    stray.write_text("not a blob")
    misplaced = catalog.cas.compute_hash(b"misplaced")
    elsewhere = catalog.blob_root / "sha256" / "aa" / "cc" / misplaced[7:]
    elsewhere.write_bytes(b"misplaced")
    for path in (stray, elsewhere):
        backdate(path, hours=48)
    report = catalog.maintenance.gc(timedelta(0))
    assert (report.removed, report.kept_recent) == ([], 0)
    assert stray.exists() and elsewhere.exists()


def test_gc_puts_back_a_file_stored_again_while_it_was_being_deleted(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"an old orphan, about to be stored again"
    path = orphan_file(catalog, content, hours=2)
    quarantine = FolderBlobStore.quarantine

    def stored_again_first(store: FolderBlobStore, stored_id: str) -> Path | None:
        assert store.put_bytes(stored_id, content) is False  # present: only touched
        return quarantine(store, stored_id)

    monkeypatch.setattr(FolderBlobStore, "quarantine", stored_again_first)
    report = catalog.maintenance.gc()
    assert (report.removed, report.kept_recent) == ([], 0)
    assert path.read_bytes() == content
    assert list((catalog.blob_root / "tmp").iterdir()) == []


def test_gc_sweeps_old_leftovers_of_the_temporary_folder(catalog: core.Services) -> None:
    tmp = catalog.blob_root / "tmp"
    old_corrupt, old_part = tmp / f"{'a' * 64}.corrupt", tmp / "crashed-write.part"
    young_corrupt = tmp / f"{'b' * 64}.corrupt"
    for path in (old_corrupt, old_part, young_corrupt):
        path.write_bytes(b"leftover")
    backdate(old_corrupt, hours=2)
    backdate(old_part, hours=2)
    assert catalog.maintenance.gc(dry_run=True).removed == []
    assert sorted(tmp.iterdir()) == sorted([old_corrupt, old_part, young_corrupt])
    catalog.maintenance.gc()
    assert list(tmp.iterdir()) == [young_corrupt]
