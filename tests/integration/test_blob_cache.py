"""The local read cache of an object store's blobs (``cache_dir``): hits served without
the store, misses filled with verified bytes only, bounded by least recent use, corrupt
copies dropped and downloaded again, shared safely by processes. Against moto."""

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import core
from core.cli import cli
from core.storage.blob_cache import BlobCache
from core.storage.object_store import ObjectBlobStore
from orchestrator_dagster import OrchestratorResource
from tests.support.blob_access import raw_blobs

KIB = 1 << 10


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The cas ids the object store is asked for, in order."""
    asked: list[str] = []
    download = ObjectBlobStore.open

    def recorded(store: ObjectBlobStore, cas_id: str):  # type: ignore[no-untyped-def]
        asked.append(cas_id)
        return download(store, cas_id)

    monkeypatch.setattr(ObjectBlobStore, "open", recorded)
    return asked


@pytest.fixture
def catalog(database_url: str, s3_blob_root: str, cache_dir: Path) -> Iterator[core.Services]:
    with core.connect(
        database_url, s3_blob_root, cache_dir=cache_dir, cache_max_bytes=100 * KIB
    ) as services:
        yield services


def cached(cache_dir: Path) -> dict[str, int]:
    """The copies in the cache: cas id -> size."""
    return {f"sha256:{path.name}": path.stat().st_size for path in cache_dir.glob("sha256/*/*/*")}


def test_a_second_read_is_a_hit_served_without_the_store(
    catalog: core.Services, cache_dir: Path, downloads: list[str]
) -> None:
    content = os.urandom(10 * KIB)
    cas_id = catalog.cas.store_content(content)
    assert catalog.cas.get_content(cas_id) == content
    assert downloads == [cas_id] and cached(cache_dir) == {cas_id: len(content)}
    assert catalog.cas.get_content(cas_id) == content
    with catalog.cas.open_content(cas_id) as verified:
        assert verified.read() == content
    assert downloads == [cas_id]  # both later reads were hits
    assert list((cache_dir / "tmp").iterdir()) == []


def test_bytes_that_do_not_verify_are_never_cached(
    catalog: core.Services, cache_dir: Path, downloads: list[str]
) -> None:
    cas_id = catalog.cas.store_content(b"0123456789")
    raw_blobs(catalog).write(cas_id, b"0123X56789")
    with pytest.raises(core.IntegrityError, match=r"corrupt.*moved to s3://"):
        catalog.cas.get_content(cas_id)  # the store's object is set aside, as without a cache
    assert cached(cache_dir) == {}
    catalog.cas.store_content(b"0123456789")
    assert catalog.cas.get_content(cas_id) == b"0123456789"
    assert cached(cache_dir) == {cas_id: 10}


def test_a_corrupt_copy_is_dropped_and_downloaded_again_in_the_same_read(
    catalog: core.Services, cache_dir: Path, downloads: list[str]
) -> None:
    content = os.urandom(10 * KIB)
    cas_id = catalog.cas.store_content(content)
    catalog.cas.get_content(cas_id)
    copy = next(cache_dir.glob("sha256/*/*/*"))
    copy.write_bytes(b"rot" + content[3:])
    assert catalog.cas.get_content(cas_id) == content  # no error: the store's bytes
    assert downloads == [cas_id, cas_id]
    assert copy.read_bytes() == content  # the copy was filled again, sound
    copy.write_bytes(content[:100])  # truncated
    with catalog.cas.open_content(cas_id) as verified:
        assert verified.read() == content
    assert downloads == [cas_id] * 3 and raw_blobs(catalog).temporary() == {}


def test_the_cache_stays_under_its_bound_evicting_the_least_recently_read(
    catalog: core.Services, cache_dir: Path, downloads: list[str]
) -> None:
    blobs = [os.urandom(30 * KIB) for _ in range(5)]  # 100 KiB hold three
    a, b, c, d, e = (catalog.cas.store_content(blob) for blob in blobs)
    for cas_id in (a, b, c):
        catalog.cas.get_content(cas_id)
        time.sleep(0.01)  # distinct use times
    catalog.cas.get_content(a)  # a hit: a is now the most recently read
    time.sleep(0.01)
    catalog.cas.get_content(d)
    assert set(cached(cache_dir)) == {a, c, d}  # b, the least recently read, went
    assert sum(cached(cache_dir).values()) <= 100 * KIB
    catalog.cas.get_content(e)
    assert set(cached(cache_dir)) == {a, d, e}
    big = catalog.cas.store_content(os.urandom(101 * KIB))  # bigger than the cache
    catalog.cas.get_content(big)
    assert set(cached(cache_dir)) == {a, d, e}
    assert downloads == [a, b, c, d, e, big]


def test_verify_and_gc_see_the_store_not_the_cache(catalog: core.Services, cache_dir: Path) -> None:
    kept = catalog.assets.commit_output("run-1", "main", "a", b"[1]", media_type="application/json")
    cas_id = kept.value.cas_id
    catalog.cas.get_content(cas_id)
    raw_blobs(catalog).write(cas_id, b"[9]")
    assert catalog.cas.get_content(cas_id) == b"[1]"  # the cached copy is sound
    report = catalog.maintenance.verify()
    assert [(p.cas_id, p.problem) for p in report.problems] == [(cas_id, "corrupt")]


TWO_PROCESSES_CHILD = """
import json, sys, core
database_url, blob_root, cache_dir, ids = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
with core.connect(database_url, blob_root, cache_dir=cache_dir, cache_max_bytes=200 * 1024) as c:
    for _ in range(3):
        for cas_id in ids:
            content = c.cas.get_content(cas_id)
            assert "sha256:" + __import__("hashlib").sha256(content).hexdigest() == cas_id
print(json.dumps({"ok": True}))
"""


def test_two_processes_share_a_cache_folder(
    database_url: str, s3_blob_root: str, cache_dir: Path
) -> None:
    with core.connect(database_url, s3_blob_root) as catalog:
        ids = [catalog.cas.store_content(os.urandom(24 * KIB)) for _ in range(12)]
    command = [sys.executable, "-c", TWO_PROCESSES_CHILD, database_url, s3_blob_root]
    children = [
        subprocess.Popen(
            [*command, str(cache_dir), *(ids if n == 0 else ids[::-1])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err[-3000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"ok": True}
    copies = list(cache_dir.glob("sha256/*/*/*"))
    assert copies and sum(path.stat().st_size for path in copies) <= 200 * KIB
    for path in copies:  # every copy whole and sound
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name
    assert list((cache_dir / "tmp").iterdir()) == []


def test_the_cache_is_set_by_argument_environment_resource_and_cli(
    database_url: str,
    s3_blob_root: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with core.connect(database_url, s3_blob_root) as catalog:
        commit = catalog.assets.commit_output
        cas_id = commit("run-1", "main", "orders", b"[1]", media_type="application/json")
        cas_id = cas_id.value.cas_id
    from_env = tmp_path / "from-env"
    monkeypatch.setenv("ORCHESTRATOR_CACHE_DIR", str(from_env))
    with core.connect(database_url, s3_blob_root) as catalog:
        catalog.cas.get_content(cas_id)
    assert set(cached(from_env)) == {cas_id}
    monkeypatch.delenv("ORCHESTRATOR_CACHE_DIR")

    from_resource = tmp_path / "from-resource"
    resource = OrchestratorResource(
        database_url=database_url, blob_root=s3_blob_root, cache_dir=str(from_resource)
    )
    with resource.opened() as catalog:
        catalog.cas.get_content(cas_id)
    assert set(cached(from_resource)) == {cas_id}

    from_cli = tmp_path / "from-cli"
    options = ["--database-url", database_url, "--blob-root", s3_blob_root]
    result = CliRunner().invoke(cli, [*options, "--cache-dir", str(from_cli), "cat", "orders"])
    assert result.exit_code == 0 and result.output == "[1]", result.output
    assert cas_id in cached(from_cli)  # beside the version document it read first


def test_a_folder_blob_root_takes_no_cache(
    database_url: str, tmp_path: Path, cache_dir: Path
) -> None:
    with core.connect(database_url, tmp_path / "blobs", cache_dir=cache_dir) as catalog:
        cas_id = catalog.cas.store_content(b"local")
        assert catalog.cas.get_content(cas_id) == b"local"
    assert not cache_dir.exists()


@pytest.mark.parametrize("size", ["0", "-5", "ten", "1.5"])
def test_a_bad_cache_size_is_a_validation_error_naming_it(
    database_url: str,
    s3_blob_root: str,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: str,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_CACHE_MAX_BYTES", size)
    with pytest.raises(core.ValidationError, match=f"ORCHESTRATOR_CACHE_MAX_BYTES '{size}'"):
        core.connect(database_url, s3_blob_root, cache_dir=cache_dir)
    with pytest.raises(core.ValidationError, match="invalid cache size 0"):
        BlobCache(cache_dir, 0)
