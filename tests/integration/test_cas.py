"""Content-addressed storage on both backends."""

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

import core
from core.storage.blobstore import FolderBlobStore
from tests.support.helpers import (
    before_blob_writes,
    blob_files,
    disk_full_for,
    row_counts,
    statements_sent,
)


def test_same_bytes_stored_twice_make_one_file_and_one_row(catalog: core.Services) -> None:
    first = catalog.cas.store_content(b"hello", "text/plain")
    second = catalog.cas.store_content(b"hello", "text/plain")
    assert first == second == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert len(blob_files(catalog)) == 1
    assert row_counts(catalog)["cas_blobs"] == 1
    assert catalog.cas.get_content(first) == b"hello"
    assert catalog.cas.get_blob(first).media_type == "text/plain"


def test_several_contents_are_recorded_together(catalog: core.Services) -> None:
    sent = statements_sent(catalog)
    items = [(b"a", "text/plain"), (b"b", "application/json"), (b"a", "text/plain")]
    ids = catalog.cas.store_contents(items)
    assert ids == [catalog.cas.compute_hash(content) for content, _ in items]
    assert len([s for s in sent if s.startswith("INSERT INTO cas_blobs")]) == 1
    assert row_counts(catalog)["cas_blobs"] == 2 and len(blob_files(catalog)) == 2
    assert catalog.cas.get_blob(ids[1]).media_type == "application/json"
    assert catalog.cas.get_content(ids[0]) == b"a"


def test_a_failed_blob_write_commits_no_row(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_blob_writes(monkeypatch, disk_full_for(b"b"))
    with pytest.raises(OSError, match="No space left"):
        catalog.cas.store_contents([(b"a", "text/plain"), (b"b", "text/plain")])
    assert row_counts(catalog)["cas_blobs"] == 0
    assert list((catalog.blob_root / "tmp").iterdir()) == []


def test_a_removed_temporary_folder_is_made_again(catalog: core.Services) -> None:
    (catalog.blob_root / "tmp").rmdir()
    cas_id = catalog.cas.store_content(b"hello")
    assert catalog.cas.get_content(cas_id) == b"hello"
    assert catalog.cas.store_stream(io.BytesIO(b"again")) == catalog.cas.compute_hash(b"again")


def test_an_unreadable_blob_file_is_a_storage_error_naming_it(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"hello")
    path = FolderBlobStore(catalog.blob_root).path(cas_id)
    path.unlink()
    path.mkdir()  # something that cannot be read as a file
    with pytest.raises(core.StorageUnavailableError, match=f"cannot read blob file '{path}'"):
        catalog.cas.get_content(cas_id)


def test_an_unwritable_blob_folder_is_a_storage_error_naming_it(catalog: core.Services) -> None:
    cas_id = catalog.cas.compute_hash(b"hello")
    target = FolderBlobStore(catalog.blob_root).path(cas_id)
    target.parent.parent.mkdir(parents=True)
    target.parent.write_bytes(b"")  # a file where the blob's folder should be
    before = row_counts(catalog)
    with pytest.raises(core.StorageUnavailableError, match=f"cannot write blob file '{target}'"):
        catalog.cas.store_content(b"hello")
    assert row_counts(catalog) == before


def test_content_stored_in_a_transaction_reads_back_before_it_commits(
    catalog: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_blob_writes(monkeypatch, lambda _content: time.sleep(0.2))  # still writing
    with catalog.database.transaction():
        cas_id = catalog.cas.store_content(b"written meanwhile")
        assert catalog.cas.get_content(cas_id) == b"written meanwhile"


def test_empty_content_round_trips(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"")
    assert cas_id == "sha256:" + hashlib.sha256(b"").hexdigest()
    assert catalog.cas.get_content(cas_id) == b""
    assert catalog.cas.exists(cas_id)


def test_writes_leave_no_temporary_files(catalog: core.Services) -> None:
    catalog.cas.store_content(os.urandom(1000))
    catalog.cas.store_stream(io.BytesIO(os.urandom(3 << 20)))
    assert list((catalog.blob_root / "tmp").iterdir()) == []
    assert len(blob_files(catalog)) == 2


def test_a_flipped_byte_is_detected_on_read(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"precious bytes")
    (path,) = blob_files(catalog)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(core.IntegrityError, match=cas_id):
        catalog.cas.get_content(cas_id)


def test_missing_bytes_of_a_cataloged_blob_are_an_integrity_error(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"soon gone")
    blob_files(catalog)[0].unlink()
    with pytest.raises(core.IntegrityError, match="missing"):
        catalog.cas.get_content(cas_id)
    assert not catalog.cas.exists(cas_id)


def test_storing_again_repairs_a_truncated_blob(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"0123456789")
    blob_files(catalog)[0].write_bytes(b"01234")
    assert catalog.cas.store_content(b"0123456789") == cas_id
    assert catalog.cas.get_content(cas_id) == b"0123456789"


def test_storing_again_repairs_a_corrupt_blob_of_the_same_size(catalog: core.Services) -> None:
    cas_id = catalog.cas.store_content(b"0123456789")
    (path,) = blob_files(catalog)
    path.write_bytes(b"0123X56789")
    with pytest.raises(core.IntegrityError, match=r"corrupt.*moved to .*\.corrupt, store the same"):
        catalog.cas.get_content(cas_id)
    (aside,) = (catalog.blob_root / "tmp").iterdir()
    assert aside.read_bytes() == b"0123X56789"  # kept for inspection until gc sweeps it
    with pytest.raises(core.IntegrityError, match="missing"):
        catalog.cas.get_content(cas_id)
    assert catalog.cas.store_content(b"0123456789") == cas_id
    assert catalog.cas.get_content(cas_id) == b"0123456789"
    stream_id = catalog.cas.store_stream(io.BytesIO(b"streamed"))
    FolderBlobStore(catalog.blob_root).path(stream_id).write_bytes(b"Streamed")
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
    payload = os.urandom((5 << 20) + 17)
    streamed = catalog.cas.store_stream(io.BytesIO(payload), "application/x-test")
    assert streamed == catalog.cas.compute_hash(payload)
    assert catalog.cas.store_content(payload) == streamed
    assert catalog.cas.get_content(streamed) == payload
    assert catalog.cas.get_blob(streamed).size == len(payload)
    assert len(blob_files(catalog)) == 1


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
    assert blob_files(catalog) == []


def test_text_streams_are_rejected(catalog: core.Services) -> None:
    with pytest.raises(core.ValidationError, match="StringIO"):
        catalog.cas.store_stream(io.StringIO("text"))  # type: ignore[arg-type]
