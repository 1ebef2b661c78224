"""The object stores (``s3://``, ``az://``) keep every promise of the local folder: blobs
stored once, verified on read, set aside when corrupt, collected by their last-modified
time, streamed in parts through a temporary key. Each test runs against a moto S3 server
and an Azurite blob service on loopback.

Objects cannot be backdated, so the gc tests here shorten the ages instead (the orphan
age to 2 s, the refresh window to 0 s) and wait for the objects to grow older.
"""

import hashlib
import io
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import core
from core.service import maintenance
from core.storage import object_store
from core.storage.blob_url import ObjectStoreUrl, parse_blob_root
from core.storage.object_store import ObjectBlobStore
from tests.support.blob_access import RawObjects, raw_blobs
from tests.support.helpers import row_counts


@pytest.fixture
def catalog(database_url: str, object_blob_root: str) -> core.Services:
    with core.connect(database_url, object_blob_root) as services:
        yield services


@pytest.fixture
def store(object_blob_root: str) -> ObjectBlobStore:
    url = parse_blob_root(object_blob_root)
    assert isinstance(url, ObjectStoreUrl)
    return ObjectBlobStore(url)


ONE_CATALOG = pytest.mark.parametrize("database_url", ["duckdb"], indirect=True)
"""For the tests that wait for objects to age: the ages are the object store's, so each
store runs them with one catalog backend (gc's catalog side runs on both elsewhere)."""


@pytest.fixture
def short_ages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Orphans count as old after 2 s, and a blob stored again is refreshed at once."""
    monkeypatch.setattr(maintenance, "ORPHAN_FILE_MIN_AGE", timedelta(seconds=2))
    monkeypatch.setattr(object_store, "REFRESH_AFTER", 0.0)


def cas_id_of(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def test_the_blob_root_is_the_url_and_blobs_live_under_its_prefix(
    catalog: core.Services, object_blob_root: str
) -> None:
    assert catalog.blob_root == object_blob_root
    cas_id = catalog.cas.store_content(b"hello", "text/plain")
    raw = raw_blobs(catalog)
    assert isinstance(raw, RawObjects)
    assert raw._objects.keys() == [f"sha256/{cas_id[7:9]}/{cas_id[9:11]}/{cas_id[7:]}"]
    assert raw.read(cas_id) == b"hello"


def test_a_blob_is_created_once_even_by_racing_writers(store: ObjectBlobStore) -> None:
    content = os.urandom(1 << 16)
    cas_id = cas_id_of(content)
    with ThreadPoolExecutor(8) as pool:
        created = list(pool.map(lambda _: store.put_bytes(cas_id, content), range(16)))
    assert created.count(True) == 1  # a conditional create: one writer made it
    assert list(store.stored_ids()) == [cas_id]


def test_storing_again_renews_an_old_object_so_gc_keeps_it(
    store: ObjectBlobStore, object_blob_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"stored long ago"
    cas_id = cas_id_of(content)
    objects = RawObjects(object_blob_root)._objects

    def last_modified() -> datetime:
        return objects.last_modified(objects.key(cas_id).removeprefix(objects.prefix))

    store.put_bytes(cas_id, content)
    first = last_modified()
    time.sleep(1.1)
    assert store.put_bytes(cas_id, content) is False
    assert last_modified() == first  # younger than REFRESH_AFTER: not rewritten
    monkeypatch.setattr(object_store, "REFRESH_AFTER", 0.0)
    assert store.put_bytes(cas_id, content) is False
    assert last_modified() > first
    stored_by = store.modified_at(cas_id)  # what gc compares: a bound, never earlier
    assert stored_by is not None and stored_by >= time.time() - 1.5


def test_store_stream_uploads_in_parts_and_leaves_no_temporary_key(
    catalog: core.Services,
) -> None:
    payload = os.urandom((3 * object_store.PART_SIZE) + 123)
    cas_id = catalog.cas.store_stream(io.BytesIO(payload), "application/x-test")
    raw = raw_blobs(catalog)
    assert cas_id == cas_id_of(payload)
    assert raw.read(cas_id) == payload
    assert raw.temporary() == {}
    assert catalog.cas.get_blob(cas_id).size == len(payload)
    with catalog.cas.open_content(cas_id) as verified:
        assert verified.read() == payload


def test_an_aborted_stream_leaves_no_content_key_and_no_row(catalog: core.Services) -> None:
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if self.sent > 3 * object_store.PART_SIZE:
                raise OSError(5, "the source went away")
            buffer[: len(buffer)] = b"x" * len(buffer)
            self.sent += len(buffer)
            return len(buffer)

    with pytest.raises((OSError, core.StorageUnavailableError)):
        catalog.cas.store_stream(Failing())  # type: ignore[arg-type]
    raw = raw_blobs(catalog)
    assert raw.ids() == [] and raw.temporary() == {}
    assert row_counts(catalog)["cas_blobs"] == 0


def test_a_tampered_object_is_an_integrity_error_set_aside_and_repaired(
    catalog: core.Services, object_blob_root: str
) -> None:
    cas_id = catalog.cas.store_content(b"0123456789")
    raw = raw_blobs(catalog)
    raw.write(cas_id, b"0123X56789")
    aside = re.escape(f"{object_blob_root}/tmp/{cas_id[7:]}.corrupt")
    with pytest.raises(core.IntegrityError, match=rf"{cas_id} is corrupt.*moved to {aside}"):
        catalog.cas.get_content(cas_id)
    assert raw.temporary() == {f"{cas_id[7:]}.corrupt": b"0123X56789"}
    assert raw.ids() == []
    with pytest.raises(core.IntegrityError, match="missing"):
        catalog.cas.get_content(cas_id)
    assert catalog.cas.store_content(b"0123456789") == cas_id
    assert catalog.cas.get_content(cas_id) == b"0123456789"


def test_a_corrupt_object_replaced_by_a_sound_copy_is_left_in_place(
    store: ObjectBlobStore, object_blob_root: str
) -> None:
    content = b"sound"
    cas_id = cas_id_of(content)
    raw = RawObjects(object_blob_root)
    store.put_bytes(cas_id, content)
    raw.write(cas_id, b"rot!!")
    with store.open(cas_id) as corrupt:  # a reader found it corrupt; then a writer repairs it
        raw.write(cas_id, content)
        assert store.set_aside(cas_id, corrupt) is None
    assert raw.read(cas_id) == content
    assert store.temporary_files() == []


def test_verify_rehashes_and_reports_corrupt_and_missing_objects(
    catalog: core.Services,
) -> None:
    good = catalog.assets.commit_output("run-1", "main", "a", b"[1]", media_type="application/json")
    bad = catalog.assets.commit_output("run-1", "main", "b", b"[2]", media_type="application/json")
    gone = catalog.assets.commit_output("run-1", "main", "c", b"[3]", media_type="application/json")
    raw = raw_blobs(catalog)
    raw.write(bad.value.cas_id, b"[9]")
    raw.delete(gone.value.cas_id)
    report = catalog.maintenance.verify()
    problems = {(p.cas_id, p.problem) for p in report.problems}
    assert problems == {(bad.value.cas_id, "corrupt"), (gone.value.cas_id, "missing")}
    assert good.value.cas_id in raw.ids()
    assert f"{bad.value.cas_id[7:]}.corrupt" in raw.temporary()
    catalog.cas.store_content(b"[2]", "application/json")
    catalog.cas.store_content(b"[3]", "application/json")
    assert catalog.maintenance.verify().problems == []


@ONE_CATALOG
@pytest.mark.usefixtures("short_ages")
def test_gc_removes_old_orphans_and_keeps_young_ones(
    catalog: core.Services, store: ObjectBlobStore
) -> None:
    old, young = b"written, then the writer crashed", b"written, its row not yet committed"
    store.put_bytes(cas_id_of(old), old)
    time.sleep(4.2)  # older than 2 s, plus the 1 s resolution of last-modified times
    store.put_bytes(cas_id_of(young), young)
    report = catalog.maintenance.gc(timedelta(0))
    assert report.removed == [cas_id_of(old)]
    assert report.kept_recent == 1
    assert list(store.stored_ids()) == [cas_id_of(young)]


@ONE_CATALOG
@pytest.mark.usefixtures("short_ages")
def test_gc_keeps_what_is_referenced_or_within_the_grace_period(catalog: core.Services) -> None:
    kept = catalog.assets.commit_output(
        "run-1", "main", "orders", b"[1, 2]", media_type="application/json"
    )
    loose = catalog.cas.store_content(b"recorded, unreferenced")
    assert catalog.maintenance.gc(timedelta(hours=1)).removed == []
    time.sleep(2.2)
    report = catalog.maintenance.gc(timedelta(0))
    assert report.removed == [loose]
    raw = raw_blobs(catalog)
    assert loose not in raw.ids() and kept.value.cas_id in raw.ids()
    assert raw.temporary() == {}
    assert catalog.cas.get_content(kept.value.cas_id) == b"[1, 2]"
    with pytest.raises(core.NotFoundError):
        catalog.cas.get_content(loose)


@ONE_CATALOG
@pytest.mark.usefixtures("short_ages")
def test_gc_puts_back_an_object_stored_again_while_it_was_being_deleted(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"an old blob, about to be stored again"
    cas_id = catalog.cas.store_content(content)
    time.sleep(2.2)
    quarantine = ObjectBlobStore.quarantine

    def stored_again_first(blobs: ObjectBlobStore, stored_id: str) -> tuple[str, float] | None:
        assert blobs.put_bytes(stored_id, content) is False  # present: refreshed
        return quarantine(blobs, stored_id)

    monkeypatch.setattr(ObjectBlobStore, "quarantine", stored_again_first)
    report = catalog.maintenance.gc(timedelta(0))
    assert (report.removed, report.kept_recent) == ([], 0)
    assert catalog.cas.get_content(cas_id) == content
    assert raw_blobs(catalog).temporary() == {}


@ONE_CATALOG
@pytest.mark.usefixtures("short_ages")
def test_gc_sweeps_old_temporary_keys(catalog: core.Services, object_blob_root: str) -> None:
    raw = RawObjects(object_blob_root)
    raw._objects.write("tmp/crashed-upload.part", b"leftover")
    time.sleep(3.2)
    raw._objects.write("tmp/young.part", b"an upload in progress")
    assert catalog.maintenance.gc(timedelta(0), dry_run=True).removed == []
    assert set(raw.temporary()) == {"crashed-upload.part", "young.part"}
    catalog.maintenance.gc(timedelta(0))
    assert set(raw.temporary()) == {"young.part"}


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("s3://bucket-a/some/prefix", ObjectStoreUrl("s3", "bucket-a", "some/prefix")),
        ("s3://bucket-a", ObjectStoreUrl("s3", "bucket-a", "")),
        ("gs://my.bucket/p/", ObjectStoreUrl("gs", "my.bucket", "p")),
        ("az://container/blobs", ObjectStoreUrl("az", "container", "blobs")),
        ("relative/folder", Path("relative/folder")),
        ("/abs/folder", Path("/abs/folder")),
    ],
)
def test_blob_roots_are_folders_or_object_store_urls(root: str, expected: object) -> None:
    assert parse_blob_root(root) == expected


@pytest.mark.parametrize(
    ("root", "reason"),
    [
        ("s3://", "not a valid bucket"),
        ("s3:///prefix", "not a valid bucket"),
        ("s3://Bad_Bucket/x", "not a valid bucket"),
        ("s3://bucket-a/x/../y", "prefix"),
        ("s3://bucket-a/x//y", "prefix"),
        ("s3://bucket-a/x?versionId=1", "no query"),
        ("ftp://bucket-a/x", "unknown scheme 'ftp'"),
        ("https://bucket-a/x", "unknown scheme 'https'"),
        ("s3://AKIAKEY:topsecret@bucket-a/x", "credentials do not belong"),
    ],
)
def test_malformed_urls_are_validation_errors_naming_them_without_secrets(
    root: str, reason: str, database_url: str
) -> None:
    with pytest.raises(core.ValidationError, match="invalid blob root") as raised:
        core.connect(database_url, root)
    message = str(raised.value)
    assert reason in message
    assert "topsecret" not in message and "AKIAKEY" not in message


@ONE_CATALOG
@pytest.mark.usefixtures("short_ages")
def test_gc_leaves_keys_that_are_not_blobs_alone(
    catalog: core.Services, object_blob_root: str
) -> None:
    objects = RawObjects(object_blob_root)._objects
    misplaced = cas_id_of(b"misplaced")
    strays = ["sha256/aa/cc/notes.txt", f"sha256/aa/cc/{misplaced[7:]}", "sha256/loose"]
    for key in strays:
        objects.write(key, b"not a blob")
    time.sleep(3.2)
    report = catalog.maintenance.gc(timedelta(0))
    assert (report.removed, report.kept_recent) == ([], 0)
    assert set(strays) <= set(objects.keys())
