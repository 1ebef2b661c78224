"""Where a catalog lives, checked without opening it or loading its storage: a Dagster
component checks its settings as its definitions load, in every process."""

import os
from dataclasses import dataclass
from pathlib import Path

from core.storage.blob_url import parse_blob_root
from core.storage.database_url import check_database_url


@dataclass(frozen=True)
class CatalogSettings:
    """Where a catalog lives, checked: ``None`` leaves the choice to ``connect`` (the
    environment, else the defaults)."""

    database_url: str | None
    blob_root: str | None
    cache_dir: str | None = None


def check_settings(
    database_url: str | None = None,
    blob_root: str | os.PathLike[str] | None = None,
    *,
    base: Path | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> CatalogSettings:
    """The settings ``connect`` would take, checked without opening or creating anything:
    a malformed database URL or blob root is a ``ValidationError`` naming it. With
    ``base``, a relative DuckDB file, blob folder or cache folder is taken under ``base``."""
    if database_url:
        url = check_database_url(database_url)
        database = Path(str(url.database)).expanduser()
        if base is not None and url.get_backend_name() == "duckdb" and not database.is_absolute():
            database_url = url.set(database=str(base / database)).render_as_string(False)
    root = parse_blob_root(blob_root) if blob_root else None
    if isinstance(root, Path) and base is not None and not root.expanduser().is_absolute():
        root = base / root
    cache = Path(cache_dir).expanduser() if cache_dir else None
    if cache is not None and base is not None and not cache.is_absolute():
        cache = base / cache
    return CatalogSettings(
        database_url=database_url or None,
        blob_root=None if root is None else str(root),
        cache_dir=None if cache is None else str(cache),
    )
