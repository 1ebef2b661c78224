"""Copying an object within a store, whatever its size: server-side up to the store's copy
limit (S3's CopyObject takes at most 5 GiB), else streamed back through this process into
a multipart upload, in bounded memory, the bytes hashed on the way when a digest is
expected (a mismatch aborts the upload: the target is never written).

The streamed copy runs on obstore's async API: a sync ``obstore.put`` cannot read its
parts from a sync ``obstore.get`` (both would block on the same runtime).
"""

import asyncio
import hashlib
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import obstore

from core.errors import IntegrityError

if TYPE_CHECKING:
    from obstore.store import ObjectStore
    from typing_extensions import Buffer

S3_COPY_LIMIT = 5 << 30
"""The largest object S3 copies server-side (CopyObject); a bigger one is streamed."""


def copy_limit(scheme: str) -> int | None:
    """The largest object a store of ``scheme`` copies server-side (``None``: no known
    limit). Read when called, so a test can lower ``S3_COPY_LIMIT``."""
    return S3_COPY_LIMIT if scheme == "s3" else None


def copy_object(
    store: "ObjectStore",
    source: str,
    target: str,
    *,
    size: int,
    limit: int | None,
    part_size: int,
    concurrency: int,
    expected: str | None = None,
) -> None:
    """Copy ``source`` (``size`` bytes) to ``target``: server-side within ``limit``, else
    streamed in parts of ``part_size`` (``concurrency`` at once). With ``expected`` (a cas
    id), a streamed copy whose bytes hash otherwise is an ``IntegrityError`` and writes
    nothing; a server-side copy is of bytes the caller hashed already."""
    if limit is None or size <= limit:
        obstore.copy(store, source, target)
        return
    _run(_stream_copy(store, source, target, part_size, concurrency, expected))


async def _stream_copy(
    store: "ObjectStore",
    source: str,
    target: str,
    part_size: int,
    concurrency: int,
    expected: str | None,
) -> None:
    result = await obstore.get_async(store, source)
    digest = hashlib.sha256()

    async def parts() -> AsyncIterator["Buffer"]:
        async for chunk in result.stream(min_chunk_size=part_size):
            digest.update(chunk)
            yield chunk
        actual = "sha256:" + digest.hexdigest()
        if expected is not None and actual != expected:  # raised before the upload completes
            raise IntegrityError(
                f"copying {source!r} to {target!r}: its bytes hash to {actual}, not {expected}"
            )

    await obstore.put_async(
        store, target, parts(), chunk_size=part_size, max_concurrency=concurrency
    )


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` to its end, on a thread of its own if this one runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="blob-copy") as pool:
        pool.submit(asyncio.run, coroutine).result()
