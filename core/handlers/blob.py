"""HTTP handler for blobs: verified bytes, immutable caching, byte ranges."""

import re

from fastapi import Response

import core

IMMUTABLE = "public, max-age=31536000, immutable"
RANGE = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)
"""One byte range; other units and several ranges are ignored (RFC 9110 14.2): a 200."""


class BlobHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def get(self, cas_id: str, range_header: str | None, if_none_match: str | None) -> Response:
        blob = self._catalog.cas.get_blob(cas_id)
        assert blob is not None
        headers = {"ETag": f'"{cas_id}"', "Cache-Control": IMMUTABLE, "Accept-Ranges": "bytes"}
        if if_none_match is not None and (if_none_match.strip() == "*" or cas_id in if_none_match):
            return Response(status_code=304, headers=headers)
        content = self._catalog.cas.get_content(cas_id)  # verified against its id
        if range_header is None or not _single_byte_range(range_header):
            return Response(content, media_type=blob.media_type, headers=headers)
        span = _byte_range(range_header, len(content))
        if span is None:
            headers["Content-Range"] = f"bytes */{len(content)}"
            return Response(status_code=416, headers=headers)
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end}/{len(content)}"
        return Response(content[start : end + 1], 206, headers, media_type=blob.media_type)


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
