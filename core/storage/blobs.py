"""The blob-store protocol: what the services need of a place that keeps blob bytes.

Two implementations: a local folder (``core.storage.blobstore.FolderBlobStore``) and an
object store (``core.storage.object_store.ObjectBlobStore``: S3, GCS, Azure). Both name a
blob by its cas id, never hand out bytes they did not verify on write, and raise
``StorageUnavailableError`` (naming the place, never a secret) when they cannot be used.
An absent blob is ``FileNotFoundError`` from ``open`` and ``None`` or ``False`` elsewhere.

Locations (``location``, ``set_aside``, ``quarantine``, ``temporary_files``) are opaque
strings for messages and for handing back to the same store: a file path or an object key.
"""

import hashlib
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import BinaryIO, Protocol

CHUNK_SIZE = 1 << 20
"""Bytes read or hashed at a time when streaming a blob."""


class BlobStore(Protocol):
    """Immutable blobs named by the sha256 of their bytes."""

    @property
    def url(self) -> str:
        """Where the store is, for messages: a folder path or an object store URL."""
        ...

    def location(self, cas_id: str) -> str:
        """Where the bytes of ``cas_id`` are (or would be), for messages."""
        ...

    def exists(self, cas_id: str) -> bool: ...

    def put_bytes(self, cas_id: str, content: bytes | memoryview) -> bool:
        """Store ``content`` (already hashed to ``cas_id``) durably; ``False`` if it was
        present. A blob already present counts as freshly stored for ``gc``."""
        ...

    def put_later(self, blobs: Sequence[tuple[str, bytes]]) -> list["Future[bool]"]:
        """Start ``put_bytes`` for each (cas id, content) in the background."""
        ...

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Hash and store ``stream`` in one pass, in bounded memory; (cas_id, size)."""
        ...

    def open(self, cas_id: str) -> BinaryIO:
        """The stored bytes, open for reading and seekable (``FileNotFoundError`` if
        absent); the caller verifies them and closes the handle."""
        ...

    def set_aside(self, cas_id: str, opened: BinaryIO) -> str | None:
        """Move the blob ``opened`` reads (found corrupt) out of the store; where it went,
        or ``None`` if the store no longer holds those bytes (repaired or collected)."""
        ...

    def modified_at(self, cas_id: str) -> float | None:
        """When the blob was last stored (POSIX seconds), or ``None`` if absent."""
        ...

    def size(self, cas_id: str) -> int | None: ...

    def quarantine(self, cas_id: str) -> tuple[str, float] | None:
        """Move the blob out of the store; where it went and when it was last stored, or
        ``None`` if it was absent."""
        ...

    def restore(self, cas_id: str, quarantined: str) -> None:
        """Put a quarantined blob back (unless it was stored again meanwhile)."""
        ...

    def discard(self, location: str) -> None:
        """Remove a temporary leftover (a collected blob, a crashed write)."""
        ...

    def stored_ids(self) -> Iterator[str]:
        """The ids of every blob in the store."""
        ...

    def temporary_files(self) -> list[tuple[str, float]]:
        """Leftovers of crashed writes and collections, each with when it was modified."""
        ...


def hash_stream(stream: BinaryIO) -> str:
    """The cas id of everything ``stream`` has left to read, read in bounded memory."""
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK_SIZE):
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()
