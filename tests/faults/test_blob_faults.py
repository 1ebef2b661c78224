"""The blob folder fails for real: remounted read-only, or full in the middle of a write.

Every case ends in a domain error (``StorageUnavailableError``, ``IntegrityError``, or
the verify report), never a bare ``OSError``; a corrupt blob is reported as corrupt even
where it cannot be set aside, and no read returns its wrong bytes.
"""

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import core
from core.storage.blobstore import FolderBlobStore
from tests.faults.conftest import Tmpfs
from tests.support.helpers import row_counts

pytestmark = pytest.mark.faults

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")


@dataclass
class ReadOnlyStore:
    """A catalog whose blob folder went read-only after one of its values rotted."""

    catalog: core.Services
    tmpfs: Tmpfs
    database_url: str
    sound: str  # cas id of a committed value, intact
    corrupt: str  # cas id of a committed value whose file was overwritten
    broken_tag: str  # a tag whose document blob was overwritten

    def orchestrator(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "ORCHESTRATOR_DATABASE_URL": self.database_url,
            "ORCHESTRATOR_BLOB_ROOT": str(self.catalog.blob_root),
        }
        return subprocess.run(
            [ORCHESTRATOR, *arguments], env=env, capture_output=True, text=True, timeout=120
        )


@pytest.fixture
def read_only_store(make_tmpfs: Callable[..., Tmpfs], database_url: str) -> Iterator[ReadOnlyStore]:
    tmpfs = make_tmpfs()
    with core.connect(database_url, tmpfs.path / "blobs") as catalog:
        sound = catalog.assets.commit_output(
            "run-1", "main", "orders", b"[1, 2]", media_type="application/json"
        ).value.cas_id
        corrupt = catalog.assets.commit_output(
            "run-1", "main", "customers", b'{"id": 1}', media_type="application/json"
        ).value.cas_id
        broken = catalog.workflows.create_workflow(
            core.CreateWorkflowRequest("etl", {"nodes": {"a": {"deps": []}}}, tag="broken")
        )
        blobs = FolderBlobStore(catalog.blob_root)
        blobs.path(corrupt).write_bytes(b'{"id": 2}')  # same size: bit rot
        document = blobs.path(broken.cas_id)
        document.write_bytes(document.read_bytes().replace(b'"a"', b'"b"'))
        tmpfs.read_only()
        try:
            yield ReadOnlyStore(catalog, tmpfs, database_url, sound, corrupt, "broken")
        finally:
            tmpfs.writable()


def test_reading_a_corrupt_blob_on_a_read_only_folder_is_an_integrity_error(
    read_only_store: ReadOnlyStore,
) -> None:
    catalog, corrupt = read_only_store.catalog, read_only_store.corrupt
    for _ in range(2):  # it stays where it is, and fails verification every time
        with pytest.raises(core.IntegrityError, match=f"blob {corrupt} is corrupt") as raised:
            catalog.cas.get_content(corrupt)
        assert "could not be set aside" in str(raised.value)
        assert "Read-only file system" in str(raised.value)
        with pytest.raises(core.IntegrityError, match=f"blob {corrupt} is corrupt"):
            catalog.cas.open_content(corrupt)
    assert FolderBlobStore(catalog.blob_root).path(corrupt).read_bytes() == b'{"id": 2}'
    assert catalog.cas.get_content(read_only_store.sound) == b"[1, 2]"


def test_verify_reports_a_corrupt_blob_it_cannot_set_aside(
    read_only_store: ReadOnlyStore,
) -> None:
    catalog = read_only_store.catalog
    report = catalog.maintenance.verify()
    assert [(p.cas_id, p.problem) for p in report.problems if p.cas_id == read_only_store.corrupt]
    assert {p.problem for p in report.problems} == {"corrupt"}
    assert len(report.problems) == 2  # the value and the broken tag's document
    assert [p.tags for p in report.problems if p.cas_id == read_only_store.corrupt] == [["main"]]
    assert FolderBlobStore(catalog.blob_root).exists(read_only_store.corrupt)  # not set aside


def test_the_cli_reports_a_corrupt_blob_on_a_read_only_folder(
    read_only_store: ReadOnlyStore,
) -> None:
    corrupt = read_only_store.corrupt
    check = read_only_store.orchestrator("verify", "--json")
    assert check.returncode == 1, check.stderr
    assert check.stderr == ""
    problems = {p["cas_id"]: p["problem"] for p in json.loads(check.stdout)["problems"]}
    assert problems[corrupt] == "corrupt"
    for arguments in (["cat", "customers"], ["show", read_only_store.broken_tag]):
        result = read_only_store.orchestrator(*arguments)
        assert result.returncode == 1, (arguments, result.stderr)
        assert result.stderr.startswith("error: blob sha256:"), result.stderr
        assert "is corrupt" in result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
    assert corrupt in read_only_store.orchestrator("cat", "customers").stderr


def test_storing_into_a_read_only_folder_is_storage_unavailable(
    read_only_store: ReadOnlyStore,
) -> None:
    catalog = read_only_store.catalog
    before = row_counts(catalog)
    root = str(catalog.blob_root)
    for store in (
        lambda: catalog.cas.store_content(b"[1, 2]", "application/json"),  # present: touched
        lambda: catalog.cas.store_content(b"new bytes"),
        lambda: catalog.cas.store_stream(io.BytesIO(b"[1, 2]")),
        lambda: catalog.cas.store_stream(io.BytesIO(b"new stream")),
    ):
        with pytest.raises(core.StorageUnavailableError, match="Read-only file system") as raised:
            store()
        assert root in str(raised.value)
    assert row_counts(catalog) == before


def test_once_writable_again_a_read_sets_the_corrupt_blob_aside_and_a_store_repairs_it(
    read_only_store: ReadOnlyStore,
) -> None:
    catalog, corrupt = read_only_store.catalog, read_only_store.corrupt
    with pytest.raises(core.IntegrityError):
        catalog.cas.get_content(corrupt)
    read_only_store.tmpfs.writable()
    with pytest.raises(core.IntegrityError, match="moved to"):
        catalog.cas.get_content(corrupt)
    catalog.cas.store_content(b'{"id": 1}', "application/json")
    assert catalog.cas.get_content(corrupt) == b'{"id": 1}'


class Trickle:
    """A stream that hands out ``chunk`` bytes per read, as a socket or a pipe does."""

    def __init__(self, payload: bytes, chunk: int) -> None:
        self._payload = io.BytesIO(payload)
        self._chunk = chunk

    def read(self, size: int = -1) -> bytes:
        return self._payload.read(self._chunk if size < 0 else min(size, self._chunk))


def free_blocks(path: Path) -> int:
    return os.statvfs(path).f_bfree


@pytest.mark.parametrize("chunk", [4 << 10, 1 << 20])
def test_a_stream_that_fills_the_disk_is_storage_unavailable_and_leaves_nothing(
    make_tmpfs: Callable[..., Tmpfs], database_url: str, chunk: int
) -> None:
    tmpfs = make_tmpfs(size="2m")
    with core.connect(database_url, tmpfs.path / "blobs") as catalog:
        free = free_blocks(tmpfs.path)
        payload = os.urandom(3 << 20)
        with pytest.raises(core.StorageUnavailableError, match="No space left on device") as raised:
            catalog.cas.store_stream(Trickle(payload, chunk))
        assert str(catalog.blob_root) in str(raised.value)
        cas_id = catalog.cas.compute_hash(payload)
        assert catalog.cas.get_blob(cas_id, missing_ok=True) is None
        assert [p for p in catalog.blob_root.rglob("*") if not p.is_dir()] == []  # no partial
        assert free_blocks(tmpfs.path) == free  # the space the write took is free again

        smaller = os.urandom(1 << 20)
        stored = catalog.cas.store_stream(Trickle(smaller, chunk))
        assert catalog.cas.get_content(stored) == smaller
        assert catalog.cas.store_content(b"and more", "text/plain")
        assert catalog.maintenance.verify().problems == []
