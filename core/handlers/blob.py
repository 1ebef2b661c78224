"""HTTP handler for blobs: verified bytes streamed in bounded memory, immutable caching,
byte ranges."""

import re
from collections.abc import Iterator
from typing import BinaryIO

from fastapi import Response
from fastapi.responses import StreamingResponse

import core
from core.blobstore import CHUNK_SIZE

IMMUTABLE = "public, max-age=31536000, immutable"
RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)
"""One byte range; other units and several ranges are ignored (RFC 9110 14.2): a 200."""


class BlobHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def get(self, cas_id: str, range_header: str | None, if_none_match: str | None) -> Response:
        status, headers, span = self._answer(cas_id, range_header, if_none_match)
        if status not in (200, 206):
            return Response(status_code=status, headers=headers)
        handle = self._catalog.cas.open_content(cas_id)  # verified against its id
        return StreamingResponse(_read_span(handle, *span), status, headers)

    def head(self, cas_id: str, range_header: str | None, if_none_match: str | None) -> Response:
        """What ``get`` would answer, without the body (from the catalog entry, no re-hash)."""
        status, headers, _ = self._answer(cas_id, range_header, if_none_match)
        return Response(status_code=status, headers=headers)

    def _answer(
        self, cas_id: str, range_header: str | None, if_none_match: str | None
    ) -> tuple[int, dict[str, str], tuple[int, int]]:
        """Status, headers and byte span of the answer to a request for a blob."""
        blob = self._catalog.cas.get_blob(cas_id)
        assert blob is not None
        headers = {"ETag": f'"{cas_id}"', "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
        span = 0, blob.size - 1
        if if_none_match is not None and (if_none_match.strip() == "*" or cas_id in if_none_match):
            return 304, headers, span
        status = 200
        if range_header is not None and _single_byte_range(range_header):
            if (requested := _byte_range(range_header, blob.size)) is None:
                headers["Content-Range"] = f"bytes */{blob.size}"
                return 416, headers, span
            span, status = requested, 206
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{blob.size}"
        headers["Content-Length"] = str(span[1] - span[0] + 1)
        headers["Content-Type"] = blob.media_type
        return status, headers, span


def _read_span(handle: BinaryIO, first: int, last: int) -> Iterator[bytes]:
    """Bytes ``first`` to ``last`` of ``handle`` in chunks; closes it at the end."""
    with handle:
        handle.seek(first)
        left = last - first + 1
        while left > 0 and (chunk := handle.read(min(CHUNK_SIZE, left))):
            left -= len(chunk)
            yield chunk


def _single_byte_range(header: str) -> bool:
    unit, _, ranges = header.strip().partition("=")
    return unit.strip().lower() == "bytes" and "," not in ranges


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single ``bytes=`` range, or ``None`` if unsatisfiable."""
    match = RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return None
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return None
    return start, end
