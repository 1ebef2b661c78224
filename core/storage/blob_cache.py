"""A local read cache of an object store's blobs (``cache_dir``), as a ``BlobStore`` that
wraps the store.

A blob's content never changes, so a cached copy is never stale; it is only ever wrong
if the disk damaged it. So each copy is verified when it is filled (the downloaded bytes
must hash to the blob's id, else nothing is cached) and again when it is read: a corrupt
copy is dropped and the blob downloaded again, within the same read. Copies live at
``<cache_dir>/sha256/ab/cd/<hex>``, written to ``<cache_dir>/tmp/`` first and renamed
into place, so processes sharing the folder never see a partial copy, and a copy removed
by another process's eviction stays readable to whoever has it open.

The cache is bounded: after each fill (a miss, never a hit) the folder is walked and the
least recently used copies (by modification time, which each hit renews: access times
are unreliable on ``noatime`` mounts) are removed until it holds at most ``max_bytes``,
whichever process filled them (a miss costs a walk of the folder: one ``stat`` per copy).
A blob bigger than that is never cached. Only reads go through the cache; everything else
is the store's. A blob that ``gc`` collected may still be read from a cache that holds it
(its bytes are still its own). A cache that cannot be written (full, read-only) is passed
by: reads go to the store.
"""

import contextlib
import hashlib
import io
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import BinaryIO

from core.errors import StorageUnavailableError, ValidationError
from core.storage.blobs import CHUNK_SIZE, BlobStore, hash_stream
from core.storage.files import open_regular

DEFAULT_CACHE_MAX_BYTES = 10 << 30
"""The cache's bound unless told otherwise: 10 GiB."""
LEFTOVER_AGE = 3600.0
"""Seconds after which a temporary file of the cache is a crashed fill's, and removed."""


class BlobCache:
    """Verified copies of blobs in a local folder, at most ``max_bytes`` of them."""

    def __init__(self, folder: str | os.PathLike[str], max_bytes: int) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValidationError(
                f"invalid cache size {max_bytes!r}: expected a positive number of bytes"
            )
        self.folder = Path(folder).expanduser().resolve()
        self.max_bytes = max_bytes
        self._tmp = self.folder / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailableError(
                f"cannot use cache folder {str(self.folder)!r}: {exc.strerror or exc}"
            ) from exc

    def path(self, cas_id: str) -> Path:
        digest = cas_id.split(":", 1)[1]
        return self.folder / "sha256" / digest[:2] / digest[2:4] / digest

    def open(self, cas_id: str) -> BinaryIO | None:
        """The cached copy of ``cas_id``, verified and open at its start, its use time
        renewed; ``None`` if there is none or it was corrupt (then it is dropped)."""
        path = self.path(cas_id)
        try:
            handle = _CachedCopy(io.FileIO(open_regular(path, os.O_RDONLY, "cached blob"), "rb"))
        except (OSError, StorageUnavailableError):  # absent, unreadable, no file: the store has it
            return None
        try:
            if hash_stream(handle) == cas_id:
                handle.seek(0)
                with contextlib.suppress(OSError):
                    os.utime(handle.fileno())
                return handle
        except OSError:
            pass
        handle.close()
        with contextlib.suppress(OSError):
            path.unlink()  # corrupt (or unreadable): downloaded again
        return None

    def fill(self, cas_id: str, source: BinaryIO) -> None:
        """Copy what ``source`` holds into the cache if it hashes to ``cas_id`` and fits,
        then evict down to the bound; ``source`` is left at its start."""
        try:
            size = source.seek(0, os.SEEK_END)
            source.seek(0)
            if size <= self.max_bytes and self._copy_in(cas_id, source):
                self.evict()
        except OSError:  # a full or read-only cache: this read goes without
            pass
        finally:
            source.seek(0)

    def evict(self) -> None:
        """Remove the least recently used copies until the cache holds at most
        ``max_bytes``, and temporary files that crashed fills left."""
        copies = []
        for path in (self.folder / "sha256").glob("*/*/*"):
            with contextlib.suppress(FileNotFoundError):  # another process evicted it
                status = path.stat()
                copies.append((status.st_mtime, status.st_size, path))
        total = sum(size for _, size, _ in copies)
        for _, size, path in sorted(copies):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
        for path in self._tmp.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if time.time() - path.stat().st_mtime > LEFTOVER_AGE:
                    path.unlink()

    def _copy_in(self, cas_id: str, source: BinaryIO) -> bool:
        """Whether ``source`` verified, and so was copied in."""
        fd, name = tempfile.mkstemp(dir=self._tmp, suffix=".part")
        temporary = Path(name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as copy:
                while chunk := source.read(CHUNK_SIZE):
                    digest.update(chunk)
                    copy.write(chunk)
            if "sha256:" + digest.hexdigest() != cas_id:  # the store's bytes are corrupt
                return False
            target = self.path(cas_id)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temporary, target)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


class _CachedCopy(io.BufferedReader):
    """A copy handed out by the cache (``set_aside`` tells it from the store's bytes)."""


class CachedBlobStore:
    """``store``, its reads served from ``cache`` when it holds the blob."""

    def __init__(self, store: BlobStore, cache: BlobCache) -> None:
        self.store = store
        self.cache = cache

    @property
    def url(self) -> str:
        return self.store.url

    def open(self, cas_id: str) -> BinaryIO:
        """The cached copy if there is a sound one, else the store's bytes (cached as
        they are handed out, if they verify)."""
        cached = self.cache.open(cas_id)
        if cached is not None:
            return cached
        handle = self.store.open(cas_id)
        self.cache.fill(cas_id, handle)
        return handle

    def set_aside(self, cas_id: str, opened: BinaryIO) -> str | None:
        """The store's object, if ``opened`` read it; a cached copy found corrupt after
        it verified (changed under the reader) is only dropped."""
        if isinstance(opened, _CachedCopy):
            with contextlib.suppress(OSError):
                self.cache.path(cas_id).unlink()
            return None
        return self.store.set_aside(cas_id, opened)

    def location(self, cas_id: str) -> str:
        return self.store.location(cas_id)

    def exists(self, cas_id: str) -> bool:
        return self.store.exists(cas_id)

    def put_bytes(self, cas_id: str, content: bytes | memoryview) -> bool:
        return self.store.put_bytes(cas_id, content)

    def put_later(self, blobs: Sequence[tuple[str, bytes]]) -> list["Future[bool]"]:
        return self.store.put_later(blobs)

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        return self.store.put_stream(stream)

    def modified_at(self, cas_id: str) -> float | None:
        return self.store.modified_at(cas_id)

    def size(self, cas_id: str) -> int | None:
        return self.store.size(cas_id)

    def quarantine(self, cas_id: str) -> tuple[str, float] | None:
        return self.store.quarantine(cas_id)

    def restore(self, cas_id: str, quarantined: str) -> None:
        self.store.restore(cas_id, quarantined)

    def discard(self, location: str) -> None:
        self.store.discard(location)

    def stored_ids(self) -> Iterator[str]:
        return self.store.stored_ids()

    def temporary_files(self) -> list[tuple[str, float]]:
        return self.store.temporary_files()
