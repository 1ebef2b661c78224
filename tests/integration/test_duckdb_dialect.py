"""The DuckDB dialect: DuckDB's reserved words are still quoted, and opening a catalog
starts no throwaway in-memory database (duckdb-engine's default connection and its
settings lookup), which every Dagster step process would pay for."""

from pathlib import Path

import duckdb
import duckdb_engine
import duckdb_engine.config
import pytest
import sqlalchemy as sa

import core
from tests.support.helpers import DAG

DUCKDB_ONLY_RESERVED = ("pivot", "qualify", "summarize")
"""Reserved by DuckDB (a bare column of that name does not parse), not by PostgreSQL."""


def test_duckdb_reserved_words_are_quoted(tmp_path: Path) -> None:
    with core.connect(f"duckdb:///{tmp_path / 'c.duckdb'}", tmp_path / "blobs") as catalog:
        with catalog.database.transaction() as session:
            names = ", ".join(f'"{name}" INTEGER' for name in DUCKDB_ONLY_RESERVED)
            session.execute(sa.text(f"CREATE TEMPORARY TABLE words ({names})"))
            session.execute(sa.text("INSERT INTO words VALUES (1, 2, 3)"))
            columns = [sa.column(name) for name in DUCKDB_ONLY_RESERVED]  # unqualified
            row = session.execute(sa.select(*columns).select_from(sa.table("words"))).one()
            reserved = set(
                session.scalars(
                    sa.text(
                        "SELECT keyword_name FROM duckdb_keywords() "
                        "WHERE keyword_category = 'reserved'"
                    )
                )
            )
        preparer = catalog.database.engine.dialect.identifier_preparer
    assert tuple(row) == (1, 2, 3)
    assert reserved <= preparer.reserved_words


def test_a_catalog_opens_without_a_throwaway_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(*args: object, **kwargs: object) -> None:
        raise AssertionError("a throwaway DuckDB database was started")

    monkeypatch.setattr(duckdb, "cursor", refused)  # duckdb-engine's keywords lookup
    monkeypatch.setattr(duckdb_engine, "get_core_config", refused)  # its settings lookup
    with core.connect(f"duckdb:///{tmp_path / 'c.duckdb'}", tmp_path / "blobs") as catalog:
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))
        assert catalog.workflows.get_workflow_by_tag("main") == DAG


def test_settings_in_the_url_still_reach_duckdb(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'c.duckdb'}?threads=1&memory_limit=200MB"
    with core.connect(url, tmp_path / "blobs") as catalog:
        with catalog.database.transaction() as session:
            threads = session.scalar(sa.text("SELECT current_setting('threads')"))
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))
    assert threads == 1
