"""Content-addressed storage on both databases and every kind of blob store (a local
folder, an S3 bucket on a loopback moto server, a GCS bucket on a loopback
fake-gcs-server, an Azure container on a loopback Azurite); the tests of folder-only
faults use a folder."""

import hashlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import core
from core.storage.blobstore import FolderBlobStore
from tests.support.blob_access import raw_blobs
from tests.support.helpers import (
    before_blob_writes,
    disk_full_for,
    row_counts,
    statements_sent,
)


@pytest.fixture(params=["local", "s3", "gs", "az"])
def catalog(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path
) -> Iterator[core.Services]:
    """Each test below runs over a local folder, an S3 and a GCS bucket and an Azure
    container."""
    root: Path | str = tmp_path / "blobs"
    if request.param != "local":
        root = request.getfixturevalue(f"{request.param}_blob_root")
    with core.connect(database_url, root) as services:
        yield services


@pytest.fixture
def folder_catalog(database_url: str, blob_root: Path) -> Iterator[core.Services]:
    """A catalog whose blobs are in a local folder (for faults only a folder has)."""
    with core.connect(database_url, blob_root) as services:
        yield services


def test_same_bytes_stored_twice_make_one_file_and_one_row(catalog: core.Services) -> None:
    first = catalog.cas.store_content(b"hello", "text/plain")
    second = catalog.cas.store_content(b"hello", "text/plain")
    assert first == second == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert len(raw_blobs(catalog).ids()) == 1
    assert row_counts(catalog)["cas_blobs"] == 1
    assert catalog.cas.get_content(first) == b"hello"
    assert catalog.cas.get_blob(first).media_type == "text/plain"


def test_several_contents_are_recorded_together(catalog: core.Services) -> None:
    sent = statements_sent(catalog)
    items = [(b"a", "text/plain"), (b"b", "application/json"), (b"a", "text/plain")]
    ids = catalog.cas.store_contents(items)
    assert ids == [catalog.cas.compute_hash(content) for content, _ in items]
    assert len([s for s in sent if s.startswith("INSERT INTO cas_blobs")]) == 1
    assert row_counts(catalog)["cas_blobs"] == 2 and len(raw_blobs(catalog).ids()) == 2
    assert catalog.cas.get_blob(ids[1]).media_type == "application/json"
    assert catalog.cas.get_content(ids[0]) == b"a"


def test_a_failed_blob_write_commits_no_row(
    folder_catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_blob_writes(monkeypatch, disk_full_for(b"b"))
    with pytest.raises(OSError, match="No space left"):
        folder_catalog.cas.store_contents([(b"a", "text/plain"), (b"b", "text/plain")])
    assert row_counts(folder_catalog)["cas_blobs"] == 0
    assert list((folder_catalog.blob_root / "tmp").iterdir()) == []


def test_a_removed_temporary_folder_is_made_again(folder_catalog: core.Services) -> None:
    (folder_catalog.blob_root / "tmp").rmdir()
    cas_id = folder_catalog.cas.store_content(b"hello")
    assert folder_catalog.cas.get_content(cas_id) == b"hello"
    assert folder_catalog.cas.store_stream(io.BytesIO(b"again")) == folder_catalog.cas.compute_hash(
        b"again"
    )


def test_an_unreadable_blob_file_is_a_storage_error_naming_it(
    folder_catalog: core.Services,
) -> None:
    cas_id = folder_catalog.cas.store_content(b"hello")
    path = FolderBlobStore(folder_catalog.blob_root).path(cas_id)
    path.unlink()
    path.mkdir()  # something that cannot be read as a file
    with pytest.raises(core.StorageUnavailableError, match=f"cannot read blob file '{path}'"):
        folder_catalog.cas.get_content(cas_id)


def test_an_unwritable_blob_folder_is_a_storage_error_naming_it(
    folder_catalog: core.Services,
) -> None:
    cas_id = folder_catalog.cas.compute_hash(b"hello")
    target = FolderBlobStore(folder_catalog.blob_root).path(cas_id)
    target.parent.parent.mkdir(parents=True)
    target.parent.write_bytes(b"")  # a file where the blob's folder should be
    before = row_counts(folder_catalog)
    with pytest.raises(core.StorageUnavailableError, match=f"cannot write blob file '{target}'"):
        folder_catalog.cas.store_content(b"hello")
    assert row_counts(folder_catalog) == before


def test_content_stored_in_a_transaction_reads_back_before_it_commits(
    folder_catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_blob_writes(monkeypatch, lambda _content: time.sleep(0.2))  # still writing
    with folder_catalog.database.transaction():
        cas_id = folder_catalog.cas.store_content(b"written meanwhile")
        assert folder_catalog.cas.get_content(cas_id) == b"written meanwhile"


def test_empty_content_round_trips(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"")
    assert cas_id == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert catalog.cas.get_content(cas_id) == b""
    assert catalog.cas.exists(cas_id)


def test_writes_leave_no_temporary_files(catalog: core.Services) -> None:
    catalog.cas.store_content(os.urandom(1000))
    catalog.cas.store_stream(io.BytesIO(os.urandom(20 << 20)))  # in parts, on s3
    assert raw_blobs(catalog).temporary() == {}
    assert len(raw_blobs(catalog).ids()) == 2


def test_a_flipped_byte_is_detected_on_read(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"precious bytes")
    raw = raw_blobs(catalog)
    data = bytearray(raw.read(cas_id))
    data[3] ^= 0x01
    raw.write(cas_id, bytes(data))
    with pytest.raises(core.IntegrityError, match=cas_id):
        catalog.cas.get_content(cas_id)


def test_missing_bytes_of_a_cataloged_blob_are_an_integrity_error(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"soon gone")
    raw_blobs(catalog).delete(cas_id)
    with pytest.raises(core.IntegrityError, match="missing"):
        catalog.cas.get_content(cas_id)
    assert not catalog.cas.exists(cas_id)


def test_storing_again_repairs_a_truncated_blob(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"0123456789")
    raw_blobs(catalog).write(cas_id, b"01234")
    assert catalog.cas.store_content(b"0123456789") == cas_id
    assert catalog.cas.get_content(cas_id) == b"0123456789"


def test_storing_again_repairs_a_corrupt_blob_of_the_same_size(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"0123456789")
    raw = raw_blobs(catalog)
    raw.write(cas_id, b"0123X56789")
    with pytest.raises(core.IntegrityError, match=r"corrupt.*moved to .*\.corrupt, store the same"):
        catalog.cas.get_content(cas_id)
    assert raw.temporary() == {f"{cas_id[7:]}.corrupt": b"0123X56789"}  # kept until gc
    with pytest.raises(core.IntegrityError, match="missing"):
        catalog.cas.get_content(cas_id)
    assert catalog.cas.store_content(b"0123456789") == cas_id
    assert catalog.cas.get_content(cas_id) == b"0123456789"
    stream_id = catalog.cas.store_stream(io.BytesIO(b"streamed"))
    raw.write(stream_id, b"Streamed")
    with pytest.raises(core.IntegrityError, match="corrupt"):
        catalog.cas.open_content(stream_id)
    assert catalog.cas.store_stream(io.BytesIO(b"streamed")) == stream_id
    with catalog.cas.open_content(stream_id) as verified:
        assert verified.read() == b"streamed"


def test_a_corrupt_file_replaced_by_a_sound_copy_is_left_in_place(tmp_path: Path) -> None:
    store = FolderBlobStore(tmp_path)
    cas_id = "sha256:" + hashlib.sha256(b"sound").hexdigest()
    store.put_bytes(cas_id, b"sound")
    store.path(cas_id).write_bytes(b"rot!!")
    with store.open(cas_id) as corrupt:  # a reader found it corrupt; then a writer repairs it
        store.path(cas_id).unlink()
        store.put_bytes(cas_id, b"sound")
        assert store.set_aside(cas_id, corrupt) is None
    assert store.path(cas_id).read_bytes() == b"sound"
    assert store.temporary_files() == []


def test_open_content_hands_out_verified_bytes_from_the_start(catalog: core.Services) -> None:
    payload = os.urandom((3 << 20) + 5)  # several of the chunks it verifies in
    cas_id = catalog.cas.store_content(payload)
    with catalog.cas.open_content(cas_id) as verified:
        assert verified.read() == payload
    with pytest.raises(core.NotFoundError, match="not found"):
        catalog.cas.open_content("sha256:" + "0" * 64)


@pytest.mark.parametrize(
    "bad_id",
    [
        "sha256:../../x",
        "sha256:" + "A" * 64,
        "sha256:" + "0" * 63,
        "md5:" + "0" * 64,
        "/etc/passwd",
        "",
        None,
    ],
)
def test_malformed_ids_are_rejected_before_touching_the_filesystem(
    catalog: core.Services, bad_id: object
) -> None:
    for operation in (catalog.cas.get_content, catalog.cas.exists, catalog.cas.get_blob):
        with pytest.raises(core.ValidationError, match="invalid cas id"):
            operation(bad_id)  # type: ignore[arg-type]


def test_unknown_id_is_not_found(catalog: core.Services) -> None:
    unknown = "sha256:" + "0" * 64
    with pytest.raises(core.NotFoundError, match=unknown):
        catalog.cas.get_content(unknown)
    assert not catalog.cas.exists(unknown)


def test_store_stream_matches_store_content(catalog: core.Services) -> None:
    payload = os.urandom((20 << 20) + 17)  # several parts of a multipart upload on s3
    streamed = catalog.cas.store_stream(io.BytesIO(payload), "application/x-test")
    assert streamed == catalog.cas.compute_hash(payload)
    assert catalog.cas.store_content(payload) == streamed
    assert catalog.cas.get_content(streamed) == payload
    assert catalog.cas.get_blob(streamed).size == len(payload)
    assert len(raw_blobs(catalog).ids()) == 1


def test_store_stream_accepts_objects_without_readinto(catalog: core.Services) -> None:
    class Chunks:
        def __init__(self, parts: list[bytes]) -> None:
            self._parts = parts

        def read(self, size: int = -1) -> bytes:
            return self._parts.pop(0) if self._parts else b""

    cas_id = catalog.cas.store_stream(Chunks([b"ab", b"cd", b"ef"]))  # type: ignore[arg-type]
    assert catalog.cas.get_content(cas_id) == b"abcdef"


@pytest.mark.parametrize("content", ["text", 42, None, [b"x"]])
def test_non_bytes_content_is_rejected(catalog: core.Services, content: object) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match=type(content).__name__):
        catalog.cas.store_content(content)  # type: ignore[arg-type]
    assert row_counts(catalog) == before


@pytest.mark.parametrize("media_type", ["", "plain", "a/b\x00", 7, "x/" + "y" * 300])
def test_bad_media_types_are_rejected(catalog: core.Services, media_type: object) -> None:
    before = row_counts(catalog)
    with pytest.raises(core.ValidationError, match="media type"):
        catalog.cas.store_content(b"x", media_type)  # type: ignore[arg-type]
    assert row_counts(catalog) == before
    assert raw_blobs(catalog).ids() == []


def test_text_streams_are_rejected(catalog: core.Services) -> None:
    with pytest.raises(core.ValidationError, match="StringIO"):
        catalog.cas.store_stream(io.StringIO("text"))  # type: ignore[arg-type]
