"""What a catalog's blob store holds, read and changed behind the catalog's back (to
tamper with a blob, lose it, or look for leftovers), whichever kind of store it is."""

import os
from pathlib import Path

import core
from core.storage.blobstore import FolderBlobStore
from tests.support.moto_server import S3Objects


class RawBlobs:
    """A local blob folder, seen as files."""

    def __init__(self, root: Path) -> None:
        self._store = FolderBlobStore(root)

    def ids(self) -> list[str]:
        return sorted(self._store.stored_ids())

    def read(self, cas_id: str) -> bytes:
        return self._store.path(cas_id).read_bytes()

    def write(self, cas_id: str, content: bytes) -> None:
        self._store.path(cas_id).write_bytes(content)

    def delete(self, cas_id: str) -> None:
        self._store.path(cas_id).unlink()

    def temporary(self) -> dict[str, bytes]:
        """Leftovers (crashed writes, corrupt blobs set aside) by name, with their bytes."""
        tmp = self._store.root / "tmp"
        return {path.name: path.read_bytes() for path in sorted(tmp.iterdir())}


class RawObjects(RawBlobs):
    """A blob store in a bucket of the loopback S3 server, seen as objects."""

    def __init__(self, url: str) -> None:
        self._objects = S3Objects(os.environ["AWS_ENDPOINT_URL"], url)

    def ids(self) -> list[str]:
        return sorted(f"sha256:{key.rsplit('/', 1)[1]}" for key in self._objects.keys("sha256/"))

    def read(self, cas_id: str) -> bytes:
        return self._objects.read(self._key(cas_id))

    def write(self, cas_id: str, content: bytes) -> None:
        self._objects.write(self._key(cas_id), content)

    def delete(self, cas_id: str) -> None:
        self._objects.delete(self._key(cas_id))

    def temporary(self) -> dict[str, bytes]:
        return {
            key.removeprefix("tmp/"): self._objects.read(key) for key in self._objects.keys("tmp/")
        }

    def _key(self, cas_id: str) -> str:
        return self._objects.key(cas_id).removeprefix(self._objects.prefix)


def raw_blobs(catalog: core.Services) -> RawBlobs:
    """Direct access to ``catalog``'s blob store, a folder or an ``s3://`` bucket."""
    root = catalog.blob_root
    if isinstance(root, Path):
        return RawBlobs(root)
    return RawObjects(root)
