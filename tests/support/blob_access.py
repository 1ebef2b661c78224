"""What a catalog's blob store holds, read and changed behind the catalog's back (to
tamper with a blob, lose it, or look for leftovers), whichever kind of store it is."""

import os
from datetime import datetime
from pathlib import Path

import obstore
from obstore.store import AzureStore, GCSStore

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


class CloudObjects:
    """The objects under ``gs://bucket/prefix`` or ``az://container/prefix`` on a loopback
    emulator (reached through the cloud's environment, as the catalog does), read and
    written behind the catalog's back, with plain obstore calls on the whole bucket."""

    def __init__(self, url: str) -> None:
        scheme, _, rest = url.partition("://")
        bucket, _, prefix = rest.partition("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.store = GCSStore(bucket) if scheme == "gs" else AzureStore(bucket)

    def key(self, cas_id: str) -> str:
        digest = cas_id.split(":", 1)[1]
        return f"{self.prefix}sha256/{digest[:2]}/{digest[2:4]}/{digest}"

    def keys(self, under: str = "") -> list[str]:
        """Every key under ``prefix + under``, relative to the prefix, sorted."""
        listed = obstore.list(self.store, prefix=self.prefix + under)
        return sorted(meta["path"][len(self.prefix) :] for batch in listed for meta in batch)

    def read(self, key: str) -> bytes:
        return obstore.get(self.store, self.prefix + key).bytes().to_bytes()

    def write(self, key: str, content: bytes) -> None:
        obstore.put(self.store, self.prefix + key, content)

    def delete(self, key: str) -> None:
        obstore.delete(self.store, self.prefix + key)

    def last_modified(self, key: str) -> datetime:
        return obstore.head(self.store, self.prefix + key)["last_modified"]


class RawObjects(RawBlobs):
    """A blob store in a bucket or container of a loopback server, seen as objects."""

    def __init__(self, url: str) -> None:
        self._objects: S3Objects | CloudObjects
        if url.startswith("s3://"):
            self._objects = S3Objects(os.environ["AWS_ENDPOINT_URL"], url)
        else:
            self._objects = CloudObjects(url)

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
    """Direct access to ``catalog``'s blob store, a folder or a bucket or container."""
    root = catalog.blob_root
    if isinstance(root, Path):
        return RawBlobs(root)
    return RawObjects(root)
