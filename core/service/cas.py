"""Content-addressed storage: bytes in the blob store, one catalog row per blob."""

import hashlib
import io
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from functools import partial
from typing import BinaryIO

from core.domain import Blob
from core.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    StorageUnavailableError,
    ValidationError,
)
from core.identifiers import check_cas_id, check_content, check_media_type
from core.repository.unit_of_work import UnitOfWork
from core.storage.blobs import BlobStore, hash_stream
from core.storage.commit_record import BlobEntry
from core.storage.uow import UnitOfWorkFactory

DEFAULT_MEDIA_TYPE = "application/octet-stream"


class _InFlight:
    """Blob files being written for transactions still open, so a read can wait for one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes: dict[str, Future[bool]] = {}

    def add(self, cas_ids: list[str], writes: list["Future[bool]"]) -> None:
        with self._lock:
            self._writes.update(zip(cas_ids, writes, strict=True))

    def wait_for(self, cas_id: str) -> None:
        with self._lock:
            write = self._writes.get(cas_id)
        if write is not None:
            write.result()

    def finish(self, cas_ids: list[str], writes: list["Future[bool]"]) -> None:
        """Wait for ``writes`` (raising the first failure) and forget them."""
        try:
            for write in writes:
                write.result()
        finally:
            with self._lock:
                for cas_id, write in zip(cas_ids, writes, strict=True):
                    if self._writes.get(cas_id) is write:
                        del self._writes[cas_id]


class CasService:
    """Stores and returns bytes by their sha256; every read is verified."""

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork], blobs: BlobStore) -> None:
        self._uow = uow
        self._blobs = blobs
        self._in_flight = _InFlight()

    @staticmethod
    def compute_hash(content: bytes) -> str:
        """The cas id of ``content``: ``sha256:<64 lowercase hex>``."""
        return "sha256:" + hashlib.sha256(content).hexdigest()

    def store_content(self, content: bytes, media_type: str = DEFAULT_MEDIA_TYPE) -> str:
        """Store ``content`` once (durably, atomically) and return its cas id."""
        return self.store_contents([(content, media_type)])[0]

    def store_contents(self, items: Sequence[tuple[bytes, str]]) -> list[str]:
        """Store each (content, media type) as ``store_content`` does, recording them in
        the catalog together; returns their cas ids in order."""
        with self._uow() as uow:
            cas_ids = self.store_in(uow, items)
            uow.commit()
        return cas_ids

    def store_in(self, uow: UnitOfWork, items: Sequence[tuple[bytes, str]]) -> list[str]:
        """A step of a use case: ``store_contents`` in ``uow``.

        The files are written while the transaction goes on and are durable before it
        commits (a failed write rolls it back): a row is never committed without its bytes.
        """
        entries = self.stage_in(uow, items)
        uow.blobs.add([(entry.cas_id, entry.size, entry.media_type) for entry in entries])
        return [entry.cas_id for entry in entries]

    def stage_in(self, uow: UnitOfWork, items: Sequence[tuple[bytes, str]]) -> list[BlobEntry]:
        """A step: write the files of ``items`` (content, media type) for ``uow``, durable
        before it commits, and return the catalog entries its commit must record."""
        for content, media_type in items:
            check_content(content)
            check_media_type(media_type)
        stored = [
            (self.compute_hash(content), content, media_type) for content, media_type in items
        ]
        contents = {cas_id: content for cas_id, content, _ in stored}  # each file written once
        writes = self._blobs.put_later(list(contents.items()))
        self._in_flight.add(list(contents), writes)
        uow.on_end(partial(self._settle, contents, writes))
        return [
            BlobEntry(cas_id, len(content), media_type) for cas_id, content, media_type in stored
        ]

    def stage_missing_in(
        self, uow: UnitOfWork, items: Sequence[tuple[bytes, str]]
    ) -> list[BlobEntry]:
        """A step: ``stage_in`` for those of ``items`` whose file is gone (lost, or set
        aside as corrupt): a commit that changes nothing still repairs what it names."""
        return self.stage_in(
            uow, [item for item in items if not self._blobs.exists(self.compute_hash(item[0]))]
        )

    def _settle(
        self, contents: dict[str, bytes], writes: list["Future[bool]"], committing: bool
    ) -> None:
        """Wait for the files; before a commit, write again any that gc took meanwhile."""
        self._in_flight.finish(list(contents), writes)
        if committing:
            for cas_id, content in contents.items():
                if not self._blobs.exists(cas_id):  # gc took it between our write and our row
                    self._blobs.put_bytes(cas_id, content)

    def store_stream(self, stream: BinaryIO, media_type: str = DEFAULT_MEDIA_TYPE) -> str:
        """Store a binary file-like object of any size in bounded memory."""
        return self.store_stream_sized(stream, media_type)[0]

    def store_stream_sized(
        self, stream: BinaryIO, media_type: str = DEFAULT_MEDIA_TYPE
    ) -> tuple[str, int]:
        """``store_stream``, returning the blob's size too: ``(cas id, size)``."""
        if isinstance(stream, io.TextIOBase) or not callable(getattr(stream, "read", None)):
            raise ValidationError(
                f"stream must be a binary file-like object, got {type(stream).__name__}"
            )
        check_media_type(media_type)
        cas_id, size = self._blobs.put_stream(stream)
        with self._uow() as uow:
            uow.blobs.add([(cas_id, size, media_type)])
            if not self._blobs.exists(cas_id):
                raise ConflictError(
                    f"blob {cas_id} was garbage-collected while being stored; store it again"
                )
            uow.commit()
        return cas_id, size

    def get_content(self, cas_id: str) -> bytes:
        """The bytes stored under ``cas_id``, verified against it."""
        return self._content(None, cas_id)

    def content_in(self, uow: UnitOfWork, cas_id: str) -> bytes:
        """A step: ``get_content``, asking ``uow`` when the file is missing."""
        return self._content(uow, cas_id)

    def _content(self, uow: UnitOfWork | None, cas_id: str) -> bytes:
        with self._open(cas_id, uow) as handle:
            content = handle.read()
            self._verify(cas_id, self.compute_hash(content), handle)
        return content

    def open_content(self, cas_id: str) -> BinaryIO:
        """The stored file of ``cas_id``, verified against it in bounded memory and open
        at its start: ``get_content`` for blobs too big to hold. The caller closes it."""
        handle = self._open(cas_id)
        try:
            self._verify(cas_id, hash_stream(handle), handle)
            handle.seek(0)
        except BaseException:
            handle.close()
            raise
        return handle

    def _open(self, cas_id: str, uow: UnitOfWork | None = None) -> BinaryIO:
        check_cas_id(cas_id)
        self._in_flight.wait_for(cas_id)  # stored earlier in this transaction
        try:
            return self._blobs.open(cas_id)
        except FileNotFoundError:
            known = self.get_blob(cas_id, missing_ok=True) if uow is None else uow.blobs.get(cas_id)
            if known is not None:
                raise IntegrityError(
                    f"blob {cas_id} is in the catalog but its bytes are missing "
                    f"from {self._blobs.location(cas_id)}; store the same bytes again to repair it"
                ) from None
            raise NotFoundError(f"blob {cas_id} not found") from None

    def _verify(self, cas_id: str, actual: str, handle: BinaryIO) -> None:
        """Raise if the bytes read from ``handle`` hash to ``actual``, not ``cas_id``; the
        corrupt file is set aside so that storing the same bytes again repairs the blob."""
        if actual == cas_id:
            return
        try:
            aside = self._blobs.set_aside(cas_id, handle)
        except StorageUnavailableError as exc:  # a read-only folder: it stays, still corrupt
            moved = f"; it could not be set aside: {exc}"
        else:
            moved = f"; moved to {aside}, store the same bytes again to repair it" if aside else ""
        raise IntegrityError(
            f"blob {cas_id} is corrupt: its bytes at {self._blobs.location(cas_id)} hash to "
            f"{actual}{moved}"
        )

    def blob_in(self, uow: UnitOfWork, cas_id: str) -> Blob:
        """A step: the catalog entry of ``cas_id`` (``NotFoundError`` if there is none)."""
        check_cas_id(cas_id)
        blob = uow.blobs.get(cas_id)
        if blob is None:
            raise NotFoundError(f"blob {cas_id} not found")
        return blob

    def get_blob(self, cas_id: str, *, missing_ok: bool = False) -> Blob | None:
        """The catalog entry of ``cas_id`` (size, media type)."""
        check_cas_id(cas_id)
        with self._uow() as uow:
            blob = uow.blobs.get(cas_id)
            uow.commit()
        if blob is None and not missing_ok:
            raise NotFoundError(f"blob {cas_id} not found")
        return blob

    def exists(self, cas_id: str) -> bool:
        """Whether ``cas_id`` is in the catalog with its bytes on disk."""
        check_cas_id(cas_id)
        return self._blobs.exists(cas_id) and self.get_blob(cas_id, missing_ok=True) is not None
