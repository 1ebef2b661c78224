"""duckdb-engine's dialect with SQLAlchemy's compiled-statement cache switched on.

Imported by SQLAlchemy only when a DuckDB URL is opened (``core.storage.db`` registers it by
name), so a process on Postgres never imports ``duckdb``.
"""

import duckdb_engine


class CachingDuckDBDialect(duckdb_engine.Dialect):
    """duckdb-engine ships the statement cache switched off, so every statement would be
    compiled again (about half a millisecond each); the whole suite runs with it on."""

    supports_statement_cache = True
