"""Blob bytes in an object store (S3 or any S3-compatible server, GCS, Azure), through
obstore (a ``BlobStore``).

Keys, under the URL's prefix: ``sha256/ab/cd/<hex>`` for a blob, ``tmp/`` for uploads in
progress, corrupt blobs set aside (``<hex>.corrupt``) and blobs being collected
(``<hex>.gc``). A blob is written with a conditional create (``If-None-Match: *``), so it
is stored once; ``put_stream`` uploads in parts to a temporary key while hashing, then
copies it to its content key (server-side, or streamed back through this process above
the store's copy limit: ``core.storage.object_copy``), so an aborted upload never leaves
a content key with other bytes. An object store has no ``touch``: a blob stored again
whose object is older than ``REFRESH_AFTER`` is refreshed (written again if small, else
copied), and ``modified_at`` answers the object's last-modified time plus
``REFRESH_AFTER`` and one second (the time's resolution), the latest moment it may have
been stored again; so ``gc``, which keeps its grace period by that time, never takes a
blob stored during the grace period.

Credentials come from each cloud's standard environment (``AWS_*``, ``GOOGLE_*``,
``AZURE_*``), never from the URL. A plain-http endpoint is used only when
``AWS_ENDPOINT_URL`` or ``GOOGLE_BASE_URL`` says ``http://`` (or Azure's emulator mode
is on). Failures are ``StorageUnavailableError`` naming the URL and the key, never a
credential.
"""

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, BinaryIO, cast

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from obstore.store import AzureStore, GCSStore, S3Store

from core.errors import IntegrityError, StorageUnavailableError
from core.identifiers import CAS_ID_PATTERN
from core.storage.blob_url import ObjectStoreUrl
from core.storage.blobs import CHUNK_SIZE
from core.storage.object_copy import copy_limit, copy_object

if TYPE_CHECKING:
    from obstore.store import ClientConfig, ObjectStore, RetryConfig

PART_SIZE = 5 << 20
"""Bytes per part of a multipart upload: the least S3 takes (but for the last part); its
10,000 parts at most make a ``store_stream`` of up to about 48 GiB."""
PART_CONCURRENCY = 4
"""Parts uploaded at once: ``store_stream`` holds about this many parts in memory."""
SPOOL_IN_MEMORY = 8 << 20
"""A download bigger than this spills to a local temporary file while it is verified."""
REFRESH_AFTER = 60.0
"""Seconds after which a blob stored again is refreshed (its last-modified time renewed)."""
TIME_RESOLUTION = 1.0
"""Object stores report last-modified times in whole seconds."""
LOOK_FIRST_ABOVE = 1 << 20
"""Content bigger than this is looked for (HEAD) before it is sent."""
WRITER_THREADS = 8
RETRY: "RetryConfig" = {
    "max_retries": 3,
    "retry_timeout": timedelta(seconds=20),
    "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2)},
}
"""Enough for a passing network fault; an endpoint that is down fails within seconds."""
_BLOB_KEY = re.compile(r"sha256/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})")


class ObjectBlobStore:
    """Immutable objects named by the sha256 of their bytes, in a bucket or container."""

    def __init__(self, url: ObjectStoreUrl, store: "ObjectStore | None" = None) -> None:
        self._url = url
        self._store = store if store is not None else _make_store(url)
        self._writers = _WriterPool()
        self._check()

    @property
    def url(self) -> str:
        return str(self._url)

    def location(self, cas_id: str) -> str:
        return self._shown(_blob_key(cas_id))

    def exists(self, cas_id: str) -> bool:
        return self._head(_blob_key(cas_id)) is not None

    def put_bytes(self, cas_id: str, content: bytes | memoryview) -> bool:
        """A conditional create; for big content, a look first, so that a dedup hit does
        not send the bytes only to be refused."""
        key = _blob_key(cas_id)
        with self._failing("write", key):
            if len(content) > LOOK_FIRST_ABOVE and (meta := self._head(key)) is not None:
                self._refresh(key, content, meta)
                return False
            try:
                obstore.put(self._store, key, content, mode="create", use_multipart=False)
            except AlreadyExistsError:
                self._refresh(key, content, self._head(key))
                return False
        return True

    def put_later(self, blobs: Sequence[tuple[str, bytes]]) -> list["Future[bool]"]:
        writers = self._writers()
        return [writers.submit(self.put_bytes, cas_id, content) for cas_id, content in blobs]

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        digest = hashlib.sha256()
        first = _read_part(stream)
        digest.update(first)
        if len(first) < PART_SIZE:  # all of it is here: one conditional put
            cas_id = "sha256:" + digest.hexdigest()
            self.put_bytes(cas_id, first)
            return cas_id, len(first)
        size = len(first)

        def parts() -> Iterator[bytes]:
            nonlocal size
            part = first
            while part:
                yield part
                part = _read_part(stream)
                digest.update(part)
                size += len(part)

        temporary = f"tmp/{uuid.uuid4().hex}.part"
        try:
            with self._failing("upload", temporary):
                obstore.put(
                    self._store,
                    temporary,
                    parts(),
                    chunk_size=PART_SIZE,
                    max_concurrency=PART_CONCURRENCY,
                )
            cas_id = "sha256:" + digest.hexdigest()
            key = _blob_key(cas_id)
            with self._failing("write", key):  # the bytes were hashed as they were sent
                self._copy(temporary, key, size, expected=cas_id)
        finally:
            with contextlib.suppress(BaseError, OSError):  # else gc sweeps it later
                obstore.delete(self._store, temporary)
        return cas_id, size

    def open(self, cas_id: str) -> BinaryIO:
        """The object's bytes, downloaded into a spooled temporary file (bounded memory),
        so that what the caller verifies is what it then reads."""
        key = _blob_key(cas_id)
        download = _Download(max_size=SPOOL_IN_MEMORY)
        try:
            with self._failing("read", key):
                result = obstore.get(self._store, key)
                download.e_tag = result.meta["e_tag"]
                for chunk in result.stream(min_chunk_size=CHUNK_SIZE):
                    download.write(chunk)
            download.seek(0)
        except BaseException:
            download.close()
            raise
        return cast(BinaryIO, download)

    def set_aside(self, cas_id: str, opened: BinaryIO) -> str | None:
        """Move the object out of the blob keys (copy to ``tmp/<hex>.corrupt``, delete),
        unless it is no longer the object ``opened`` read (a sound copy replaced it)."""
        key = _blob_key(cas_id)
        meta = self._head(key)
        if meta is None or meta["e_tag"] != getattr(opened, "e_tag", meta["e_tag"]):
            return None
        aside = f"tmp/{cas_id.split(':', 1)[1]}.corrupt"
        self._move(key, aside, meta["size"])
        return self._shown(aside)

    def modified_at(self, cas_id: str) -> float | None:
        """The latest moment the blob may have been stored (see the module's docstring)."""
        meta = self._head(_blob_key(cas_id))
        return None if meta is None else _stored_by(meta)

    def size(self, cas_id: str) -> int | None:
        meta = self._head(_blob_key(cas_id))
        return None if meta is None else meta["size"]

    def quarantine(self, cas_id: str) -> tuple[str, float] | None:
        key = _blob_key(cas_id)
        meta = self._head(key)
        if meta is None:
            return None
        quarantined = f"tmp/{cas_id.split(':', 1)[1]}.gc"
        try:
            self._move(key, quarantined, meta["size"])
        except FileNotFoundError:  # another gc took it meanwhile
            return None
        return self._shown(quarantined), _stored_by(meta)

    def restore(self, cas_id: str, quarantined: str) -> None:
        key, aside = _blob_key(cas_id), self._key_of(quarantined)
        try:
            if self._head(key) is None and (meta := self._head(aside)) is not None:
                with self._failing("put back", key):
                    self._copy(aside, key, meta["size"])
        except FileNotFoundError:  # nothing left to put back
            return
        except StorageUnavailableError as exc:
            raise StorageUnavailableError(
                f"{exc}; copy {self._shown(aside)} back to {self._shown(key)} by hand"
            ) from exc
        self.discard(quarantined)

    def discard(self, location: str) -> None:
        key = self._key_of(location)
        with self._failing("remove", key), contextlib.suppress(FileNotFoundError):
            obstore.delete(self._store, key)

    def stored_ids(self) -> Iterator[str]:
        for meta in self._list("sha256/"):
            match = _BLOB_KEY.fullmatch(meta["path"])
            if match and match[3].startswith(match[1] + match[2]):
                cas_id = f"sha256:{match[3]}"
                if CAS_ID_PATTERN.fullmatch(cas_id):
                    yield cas_id

    def temporary_files(self) -> list[tuple[str, float]]:
        return [
            (self._shown(meta["path"]), meta["last_modified"].timestamp())
            for meta in self._list("tmp/")
        ]

    def _check(self) -> None:
        """One listing: the endpoint answers, the bucket exists, the credentials work."""
        with self._failing("list", "sha256/"):
            stream = obstore.list(self._store, prefix="sha256/", chunk_size=1)
            try:
                next(iter(stream), None)
            except FileNotFoundError as exc:
                raise StorageUnavailableError(
                    f"cannot use blob store {self.url!r}: the bucket or container "
                    f"{self._url.bucket!r} does not exist"
                ) from exc

    def _refresh(
        self, key: str, content: bytes | memoryview, meta: "obstore.ObjectMeta | None"
    ) -> None:
        """The object (``meta``) exists: write it again if it is gone now or has another
        size (truncated), else renew its last-modified time if older than ``REFRESH_AFTER``."""
        if meta is not None and meta["size"] == len(content):
            if not _stale(meta):
                return
            if len(content) > PART_SIZE:  # big: copied, not sent again
                self._touch(key, len(content))
                return
        obstore.put(self._store, key, content, use_multipart=False)

    def _touch(self, key: str, size: int) -> None:
        """Renew the last-modified time of ``key``: copied away and back server-side (a
        store refuses to copy an object onto itself), or streamed onto itself above the
        copy limit (the new object replaces the old only once it is complete)."""
        limit = copy_limit(self._url.scheme)
        if limit is not None and size > limit:
            self._copy(key, key, size)
            return
        touched = f"tmp/{uuid.uuid4().hex}.touch"
        obstore.copy(self._store, key, touched)
        try:
            obstore.copy(self._store, touched, key)
        finally:
            obstore.delete(self._store, touched)

    def _move(self, key: str, to: str, size: int) -> None:
        with self._failing("move", key):
            self._copy(key, to, size)
            obstore.delete(self._store, key)

    def _copy(self, source: str, target: str, size: int, expected: str | None = None) -> None:
        try:
            copy_object(
                self._store,
                source,
                target,
                size=size,
                limit=copy_limit(self._url.scheme),
                part_size=PART_SIZE,
                concurrency=PART_CONCURRENCY,
                expected=expected,
            )
        except IntegrityError as exc:  # the store changed the bytes: nothing was written
            raise IntegrityError(f"in blob store {self.url!r}, {exc}") from exc

    def _head(self, key: str) -> "obstore.ObjectMeta | None":
        with self._failing("read", key):
            try:
                return obstore.head(self._store, key)
            except FileNotFoundError:
                return None

    def _list(self, prefix: str) -> list["obstore.ObjectMeta"]:
        with self._failing("list", prefix):
            return [meta for batch in obstore.list(self._store, prefix=prefix) for meta in batch]

    def _shown(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _key_of(self, location: str) -> str:
        return location.removeprefix(f"{self.url}/")

    @contextlib.contextmanager
    def _failing(self, action: str, key: str) -> Iterator[None]:
        """Turn an object store failure (but an absent object) into
        ``StorageUnavailableError`` naming the URL and key."""
        try:
            yield
        except FileNotFoundError:
            raise
        except (BaseError, OSError) as exc:
            raise StorageUnavailableError(
                f"cannot {action} {self._shown(key)!r} in blob store {self.url!r}: {_reason(exc)}"
            ) from exc


class _Download(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
    """A spooled temporary file that remembers the entity tag of the object it holds."""

    e_tag: str | None = None


def _make_store(url: ObjectStoreUrl) -> "ObjectStore":
    prefix = url.prefix or None
    options: ClientConfig = {"connect_timeout": timedelta(seconds=5)}
    try:
        if url.scheme == "s3":
            options["allow_http"] = _says_http("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
            return S3Store(url.bucket, prefix=prefix, client_options=options, retry_config=RETRY)
        if url.scheme == "gs":
            options["allow_http"] = _says_http("GOOGLE_BASE_URL")
            return GCSStore(url.bucket, prefix=prefix, client_options=options, retry_config=RETRY)
        # Azure's emulator mode (AZURE_STORAGE_USE_EMULATOR) allows plain http by itself
        return AzureStore(url.bucket, prefix=prefix, client_options=options, retry_config=RETRY)
    except (BaseError, OSError, ValueError) as exc:
        raise StorageUnavailableError(
            f"cannot use blob store {str(url)!r}: {_reason(exc)}"
        ) from exc


def _says_http(*variables: str) -> bool:
    """Whether the first of these endpoint variables that is set names a plain-http URL."""
    endpoint = next((os.environ[name] for name in variables if os.environ.get(name)), "")
    return endpoint.lower().startswith("http://")


def _reason(exc: BaseException) -> str:
    """What went wrong, in a line: a known cause in words, else obstore's first line
    without the server's response body (which could be long)."""
    text = str(exc)
    if isinstance(exc, PermissionDeniedError | UnauthenticatedError) or re.search(
        r"\b(403 Forbidden|InvalidAccessKeyId|SignatureDoesNotMatch|AccessDenied)\b", text
    ):
        return "access denied: check the credentials in the environment"
    if "NoSuchBucket" in text:
        return "the bucket does not exist"
    if "ContainerNotFound" in text:  # Azure's answer to listing a missing container
        return "the container does not exist"
    if "builder error" in text:
        return (
            "cannot build a request (a plain-http endpoint needs AWS_ENDPOINT_URL=http://... "
            "or GOOGLE_BASE_URL=http://...)"
        )
    if "error sending request" in text or "timed out" in text.lower():
        return "the endpoint cannot be reached"
    first = text.splitlines()[0] if text else type(exc).__name__
    return re.split(r"\s*: <\?xml|\s+- Server returned", first)[0][:300]


def _stored_by(meta: "obstore.ObjectMeta") -> float:
    return meta["last_modified"].timestamp() + TIME_RESOLUTION + REFRESH_AFTER


def _stale(meta: "obstore.ObjectMeta") -> bool:
    return time.time() - meta["last_modified"].timestamp() > REFRESH_AFTER


def _blob_key(cas_id: str) -> str:
    digest = cas_id.split(":", 1)[1]
    return f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"


def _read_part(stream: BinaryIO) -> bytes:
    """Up to ``PART_SIZE`` bytes of ``stream`` (fewer only at its end)."""
    parts, size = [], 0
    while size < PART_SIZE:
        chunk = stream.read(min(CHUNK_SIZE, PART_SIZE - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


class _WriterPool:
    """One thread pool per store and process, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    def __call__(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._pid != os.getpid():  # a forked child makes its own
                self._pool = ThreadPoolExecutor(WRITER_THREADS, thread_name_prefix="blob-put")
                self._pid = os.getpid()
            return self._pool
