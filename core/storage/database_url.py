"""Database URLs: which catalogs the storage opens, checked without opening one."""

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from core.errors import ValidationError

SUPPORTED_BACKENDS = ("duckdb", "postgresql")


def check_database_url(url: str | URL) -> URL:
    """``url`` parsed, or a ``ValidationError`` naming it: a DuckDB file
    (``duckdb:///<file>``) or Postgres (``postgresql+psycopg://...``). Opens nothing."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValidationError(
            f"invalid database url {url!r}: expected duckdb:///<file> or postgresql+psycopg://..."
        ) from exc
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise ValidationError(
            f"unsupported database url {parsed.render_as_string(hide_password=True)!r}: "
            "use duckdb:///<file> or postgresql+psycopg://..."
        )
    if parsed.get_backend_name() == "duckdb" and parsed.database in (None, "", ":memory:"):
        shown = url if isinstance(url, str) else str(url)
        raise ValidationError(f"DuckDB catalog needs a file path, got {shown!r}")
    return parsed
