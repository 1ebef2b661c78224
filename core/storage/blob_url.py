"""Where blobs live: a local folder or an object store URL (``s3://``, ``gs://``, ``az://``).

``parse_blob_root`` tells the two apart and rejects a malformed URL with a
``ValidationError`` that names it (credentials in a URL are refused and never echoed:
they come from each cloud's standard environment).
"""

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from core.errors import ValidationError

SCHEMES = {"s3": "S3", "gs": "Google Cloud Storage", "az": "Azure Blob Storage"}
"""The object store URL schemes, and what each names."""
_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")
"""S3, GCS and Azure container names share this shape (lowercase, 3 to 63 characters)."""
_PREFIX_PART = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ObjectStoreUrl:
    """``<scheme>://<bucket>/<prefix>``: the blobs live under ``prefix`` in ``bucket``."""

    scheme: str
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")


def parse_blob_root(root: str | os.PathLike[str]) -> Path | ObjectStoreUrl:
    """A local folder (any path) or an object store URL (any ``scheme://``)."""
    text = os.fspath(root)
    if "://" not in text:
        return Path(text)
    scheme = text.split("://", 1)[0].lower()
    shown = _without_credentials(text)
    if scheme not in SCHEMES:
        raise ValidationError(
            f"invalid blob root {shown!r}: unknown scheme {scheme!r} "
            f"(expected a folder or one of {', '.join(f'{s}://' for s in SCHEMES)})"
        )
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise ValidationError(
            f"invalid blob root {shown!r}: credentials do not belong in the URL; "
            "set them in the environment (e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        )
    if parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValidationError(f"invalid blob root {shown!r}: no query or fragment allowed")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ValidationError(
            f"invalid blob root {shown!r}: {bucket!r} is not a valid bucket or container "
            "name (3 to 63 lowercase letters, digits, '.', '-')"
        )
    prefix = parts.path.strip("/")
    if prefix and not all(
        _PREFIX_PART.fullmatch(part) and part not in (".", "..") for part in prefix.split("/")
    ):
        raise ValidationError(
            f"invalid blob root {shown!r}: the prefix {prefix!r} must be '/'-separated names "
            "of letters, digits, '.', '_' and '-' (no empty part, no '.' or '..')"
        )
    return ObjectStoreUrl(scheme, bucket, prefix)


def _without_credentials(text: str) -> str:
    """``text`` with anything between ``://`` and an ``@`` in its authority masked."""
    scheme, rest = text.split("://", 1)
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}://{authority}{slash}{path}"
