"""Objects above the store's server-side copy limit (S3's CopyObject takes at most 5 GiB):
every copy the object store makes (a ``store_stream`` into its content key, a refresh, a
move aside or into quarantine, a restore) streams the bytes back through the process
instead, hashed on the way. moto copies objects of any size, so the tests lower the
limit (``S3_COPY_LIMIT``) below their few MiB and check that no server-side copy ran.
"""

import hashlib
import io
import json
import os
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import obstore
import pytest

import core
from core.service import maintenance
from core.storage import object_copy, object_store
from core.storage.blob_url import ObjectStoreUrl, parse_blob_root
from core.storage.object_store import ObjectBlobStore
from tests.support.blob_access import RawObjects, raw_blobs
from tests.support.helpers import row_counts

LIMIT = 6 << 20
"""The lowered copy limit: above one part (5 MiB), below the blobs here."""


@pytest.fixture
def server_copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The copy limit lowered to ``LIMIT``; the (source, target) of every server-side copy."""
    monkeypatch.setattr(object_copy, "S3_COPY_LIMIT", LIMIT)
    copies: list[tuple[str, str]] = []
    server_side = obstore.copy

    def recorded(store: object, source: str, target: str, **options: object) -> None:
        copies.append((source, target))
        server_side(store, source, target, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(obstore, "copy", recorded)
    return copies


@pytest.fixture
def catalog(database_url: str, s3_blob_root: str) -> Iterator[core.Services]:
    with core.connect(database_url, s3_blob_root) as services:
        yield services


@pytest.fixture
def store(s3_blob_root: str) -> ObjectBlobStore:
    url = parse_blob_root(s3_blob_root)
    assert isinstance(url, ObjectStoreUrl)
    return ObjectBlobStore(url)


def big() -> bytes:
    return os.urandom(2 * object_store.PART_SIZE + 12345)


def test_the_limit_is_s3s_and_only_s3_has_one() -> None:
    assert object_copy.copy_limit("s3") == 5 << 30
    assert object_copy.copy_limit("gs") is None and object_copy.copy_limit("az") is None


def test_store_stream_above_the_limit_streams_into_the_content_key(
    catalog: core.Services, server_copies: list[tuple[str, str]]
) -> None:
    payload = big()
    cas_id = catalog.cas.store_stream(io.BytesIO(payload), "application/x-test")
    raw = raw_blobs(catalog)
    assert isinstance(raw, RawObjects)
    assert cas_id == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert server_copies == []
    assert raw.read(cas_id) == payload
    assert raw.temporary() == {} and raw._objects.incomplete_uploads() == []
    with catalog.cas.open_content(cas_id) as verified:
        assert verified.read() == payload
    assert catalog.cas.store_stream(io.BytesIO(payload)) == cas_id  # stored again: same key
    assert raw.ids() == [cas_id] and raw._objects.incomplete_uploads() == []


def test_below_the_limit_the_copy_stays_server_side(
    catalog: core.Services, server_copies: list[tuple[str, str]]
) -> None:
    payload = os.urandom(object_store.PART_SIZE + 1)  # a multipart upload, below 6 MiB
    cas_id = catalog.cas.store_stream(io.BytesIO(payload))
    assert [target for _, target in server_copies] == [
        f"sha256/{cas_id[7:9]}/{cas_id[9:11]}/{cas_id[7:]}"
    ]


def test_bytes_changed_in_the_store_before_the_copy_write_no_content_key_and_no_row(
    catalog: core.Services,
    s3_blob_root: str,
    server_copies: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = RawObjects(s3_blob_root)
    copy = object_copy.copy_object

    def tampered_first(store: object, source: str, target: str, **options: object) -> None:
        data = bytearray(raw._objects.read(source))
        data[-1] ^= 1
        raw._objects.write(source, bytes(data))
        copy(store, source, target, **options)  # type: ignore[arg-type]

    monkeypatch.setattr("core.storage.object_store.copy_object", tampered_first)
    payload = big()
    with pytest.raises(core.IntegrityError, match=r"s3://.*hash to sha256:\w+, not sha256:"):
        catalog.cas.store_stream(io.BytesIO(payload))
    assert raw.ids() == [] and raw.temporary() == {}
    assert raw._objects.incomplete_uploads() == []  # the upload to the content key aborted
    assert row_counts(catalog)["cas_blobs"] == 0


def test_a_stale_big_blob_stored_again_is_refreshed_by_streaming_it_onto_itself(
    store: ObjectBlobStore,
    s3_blob_root: str,
    server_copies: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    content = big()
    cas_id = "sha256:" + hashlib.sha256(content).hexdigest()
    objects = RawObjects(s3_blob_root)._objects

    def last_modified() -> object:
        return objects.client.head_object(Bucket=objects.bucket, Key=objects.key(cas_id))[
            "LastModified"
        ]

    assert store.put_bytes(cas_id, content) is True
    first = last_modified()
    time.sleep(1.1)
    monkeypatch.setattr(object_store, "REFRESH_AFTER", 0.0)
    assert store.put_bytes(cas_id, content) is False
    assert last_modified() > first  # type: ignore[operator]
    assert server_copies == []
    assert RawObjects(s3_blob_root).read(cas_id) == content
    assert store.temporary_files() == [] and objects.incomplete_uploads() == []


def test_a_corrupt_big_blob_is_set_aside_and_gc_collects_big_orphans_by_streaming(
    catalog: core.Services,
    store: ObjectBlobStore,
    server_copies: list[tuple[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = raw_blobs(catalog)
    rotten, orphan = big(), big()
    rotten_id = catalog.cas.store_stream(io.BytesIO(rotten))
    raw.write(rotten_id, rotten[:-1] + bytes([rotten[-1] ^ 1]))
    with pytest.raises(core.IntegrityError, match=r"moved to s3://.*corrupt"):
        catalog.cas.get_content(rotten_id)
    assert set(raw.temporary()) == {f"{rotten_id[7:]}.corrupt"}
    orphan_id = "sha256:" + hashlib.sha256(orphan).hexdigest()
    store.put_bytes(orphan_id, orphan)
    monkeypatch.setattr(maintenance, "ORPHAN_FILE_MIN_AGE", timedelta(seconds=0))
    monkeypatch.setattr(object_store, "REFRESH_AFTER", 0.0)
    time.sleep(1.1)
    report = catalog.maintenance.gc(timedelta(0))
    assert orphan_id in report.removed
    assert raw.ids() == [] and server_copies == []


def test_a_quarantined_big_blob_is_put_back_by_streaming(
    store: ObjectBlobStore, s3_blob_root: str, server_copies: list[tuple[str, str]]
) -> None:
    content = big()
    cas_id = "sha256:" + hashlib.sha256(content).hexdigest()
    store.put_bytes(cas_id, content)
    moved = store.quarantine(cas_id)
    assert moved is not None and RawObjects(s3_blob_root).ids() == []
    store.restore(cas_id, moved[0])
    raw = RawObjects(s3_blob_root)
    assert raw.read(cas_id) == content and raw.temporary() == {}
    assert server_copies == []


def test_the_documented_lifecycle_rule_is_one_s3_takes(s3_blob_root: str) -> None:
    """obstore can neither list nor abort multipart uploads, so gc cannot sweep those a
    killed writer left; the documented remedy is a bucket lifecycle rule: this one."""
    page = (Path(__file__).parents[2] / "docs" / "object-store.md").read_text()
    command = re.search(r"put-bucket-lifecycle-configuration .*?'(\{.*?\})'`", page, re.S)
    assert command is not None
    rules = json.loads(command[1].replace("\n", " "))
    objects = RawObjects(s3_blob_root)._objects
    objects.client.put_bucket_lifecycle_configuration(
        Bucket=objects.bucket, LifecycleConfiguration=rules
    )
    stored = objects.client.get_bucket_lifecycle_configuration(Bucket=objects.bucket)
    [rule] = stored["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert not hasattr(obstore, "list_multipart_uploads")  # else gc should sweep them
