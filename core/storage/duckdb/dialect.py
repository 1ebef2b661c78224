"""duckdb-engine's dialect with SQLAlchemy's compiled-statement cache switched on, and
without the throwaway in-memory databases duckdb-engine opens in every process.

Imported by SQLAlchemy only when a DuckDB URL is opened (``core.storage.db`` registers it by
name), so a process on Postgres never imports ``duckdb``.

duckdb-engine starts a DuckDB database for each of two questions it asks of DuckDB itself:
the reserved keywords (on DuckDB's default connection, when the dialect is made) and the
names of the settings a connection takes (on its first connect). Each costs about 20 ms of
CPU, in every process that opens a catalog (every Dagster step process). Here the keywords
are read on the catalog's own first connection, before any statement is compiled, and a
connection with no settings to sort out is opened directly.
"""

from typing import Any, cast

import duckdb
import duckdb_engine
import sqlalchemy
from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer
from sqlalchemy.engine.interfaces import DBAPIConnection

RESERVED_KEYWORDS = "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"


class CatalogIdentifierPreparer(duckdb_engine.DuckDBIdentifierPreparer):
    """duckdb-engine's quoting rules; DuckDB's reserved keywords are added by
    ``CachingDuckDBDialect.initialize`` from the first connection (duckdb-engine asks
    DuckDB's default in-memory connection for them, and adds them to PostgreSQL's shared
    set)."""

    def __init__(self, dialect: sqlalchemy.Dialect, **kwargs: Any) -> None:
        PGIdentifierPreparer.__init__(self, dialect, **kwargs)
        self.reserved_words = set(self.reserved_words)


class CachingDuckDBDialect(duckdb_engine.Dialect):
    """duckdb-engine ships the statement cache switched off, so every statement would be
    compiled again (about half a millisecond each); the whole suite runs with it on."""

    supports_statement_cache = True
    preparer = CatalogIdentifierPreparer

    def initialize(self, connection: sqlalchemy.Connection) -> None:
        """Called by SQLAlchemy on the engine's first connection, before any statement is
        compiled: DuckDB's reserved keywords are quoted like PostgreSQL's."""
        keywords = connection.exec_driver_sql(RESERVED_KEYWORDS).scalars()
        self.identifier_preparer.reserved_words.update(keywords)
        super().initialize(connection)

    def connect(self, *cargs: Any, **cparams: Any) -> DBAPIConnection:
        """A connection to the file, opened directly when nothing but the file is asked for;
        settings, extensions or file systems go through duckdb-engine, which sorts them out
        on a throwaway database."""
        if set(cparams) - {"database", "url_config"} or cparams.get("url_config") or cargs:
            return cast(DBAPIConnection, super().connect(*cargs, **cparams))
        agent = f"duckdb_engine/{duckdb_engine.__version__}(sqlalchemy/{sqlalchemy.__version__})"
        connection = duckdb.connect(cparams["database"], config={"custom_user_agent": agent})
        return cast(DBAPIConnection, duckdb_engine.ConnectionWrapper(connection))
