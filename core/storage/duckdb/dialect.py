"""duckdb-engine's dialect with SQLAlchemy's compiled-statement cache switched on, and
without the throwaway in-memory databases duckdb-engine opens in every process.

Imported by SQLAlchemy only when a DuckDB URL is opened (``core.storage.db`` registers it by
name), so a process on Postgres never imports ``duckdb``.

duckdb-engine starts a DuckDB database for each of three questions it asks of DuckDB
itself: whether ``COMMENT ON`` parses (as it is imported), the reserved keywords (on
DuckDB's default connection, when the dialect is made) and the names of the settings a
connection takes (on its first connect). Each costs 12-20 ms of CPU, in every process
that opens a catalog (every Dagster step process, every command). Here the first is
answered without asking (every DuckDB this package takes has ``COMMENT ON``), the
keywords are read on the catalog's own first connection, before any statement is
compiled, and a connection with no settings to sort out is opened directly.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import duckdb
import sqlalchemy
from sqlalchemy.dialects.postgresql.base import PGIdentifierPreparer
from sqlalchemy.engine.interfaces import DBAPIConnection


def _supports_answering_yes() -> ModuleType | None:
    """duckdb-engine's ``_supports`` module, loaded ahead of its package, with
    ``has_comment_support`` answering yes without starting a database (DuckDB has had
    ``COMMENT ON`` since 0.10); ``None`` when duckdb-engine is imported already, or laid
    out otherwise (it then asks, as it would)."""
    if "duckdb_engine" in sys.modules:
        return None
    package = importlib.util.find_spec("duckdb_engine")
    folders = package.submodule_search_locations if package is not None else None
    path = Path(folders[0]) / "_supports.py" if folders else None
    if path is None or not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("duckdb_engine._supports", path)
    if spec is None or spec.loader is None:
        return None
    supports = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(supports)
    supports.__dict__["has_comment_support"] = lambda: True
    sys.modules[spec.name] = supports
    return supports


_supports = _supports_answering_yes()
import duckdb_engine  # noqa: E402 (after its probe is answered)

if _supports is not None:  # loaded ahead of the package: its attribute, as an import sets
    duckdb_engine._supports = _supports

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
