"""HTTP handler for blobs: verified bytes streamed in bounded memory, immutable caching,
byte ranges."""

import re
from collections.abc import Iterator
from typing import BinaryIO

from fastapi import Response
from fastapi.responses import StreamingResponse

import core
from core.handlers.headers import none_match, parse_number
from core.storage.blobs import CHUNK_SIZE

LARGEST_POSITION = 2**63 - 1
IMMUTABLE = "public, max-age=31536000, immutable"
RANGE = re.compile(r"bytes=[ \t]*([0-9]*)-([0-9]*)[ \t]*", re.IGNORECASE)
"""One byte range (RFC 9110 14.1.2); other units, several ranges and a malformed range
are ignored (RFC 9110 14.2): a 200."""


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
        if none_match(if_none_match, headers["ETag"]):
            return 304, headers, span
        status = 200
        if range_header is not None and (requested := _byte_range(range_header)) is not None:
            if (satisfied := _satisfiable(*requested, blob.size)) is None:
                headers["Content-Range"] = f"bytes */{blob.size}"
                return 416, headers, span
            span, status = satisfied, 206
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


def _byte_range(header: str) -> tuple[int | None, int | None] | None:
    """The (first, last) positions of a single valid ``bytes=`` range (``None`` for an
    absent one), or ``None`` if the header is no such range and so is ignored."""
    match = RANGE.fullmatch(header.strip(" \t"))
    if match is None or match.groups() == ("", ""):
        return None
    first, last = (None if text == "" else _position(text) for text in match.groups())
    if first is not None and last is not None and last < first:
        return None  # invalid (RFC 9110 14.1.1), not unsatisfiable
    return first, last


def _position(digits: str) -> int:
    """A byte position; one too long to parse is past the end of any blob."""
    number = parse_number(digits)
    return LARGEST_POSITION if number is None else min(number, LARGEST_POSITION)


def _satisfiable(first: int | None, last: int | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte that a range selects in ``size`` bytes, or ``None``."""
    if first is None:  # a suffix: the last ``last`` bytes
        assert last is not None
        if last == 0 or size == 0:
            return None
        return max(0, size - last), size - 1
    if first >= size:
        return None
    return first, size - 1 if last is None else min(last, size - 1)
