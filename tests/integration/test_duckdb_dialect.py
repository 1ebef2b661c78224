"""The DuckDB dialect: DuckDB's reserved words are still quoted, and opening a catalog
starts no throwaway in-memory database (duckdb-engine's probe for ``COMMENT ON``, its
default connection and its settings lookup), which every Dagster step process would pay
for."""

import json
import subprocess
import sys
import textwrap
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


FRESH_PROCESS = """
import json, sys
import duckdb

opened = []
connect, cursor = duckdb.connect, duckdb.cursor

def recorded_connect(database=":memory:", *args, **kwargs):
    opened.append(str(database))
    return connect(database, *args, **kwargs)

def recorded_cursor(*args, **kwargs):
    opened.append("default connection")
    return cursor(*args, **kwargs)

duckdb.connect, duckdb.cursor = recorded_connect, recorded_cursor
import core
import core.storage.duckdb.dialect  # what SQLAlchemy loads for the catalog's URL
import duckdb_engine

with core.connect(f"duckdb:///{sys.argv[1]}/c.duckdb", f"{sys.argv[1]}/blobs") as catalog:
    catalog.assets.commit_output("run", "main", "a", b"1", media_type="application/json")
from core.storage.models import Base

print(json.dumps({
    "opened": opened,
    "mappers configured": any(mapper.configured for mapper in Base.registry.mappers),
    "comments": duckdb_engine.Dialect.supports_comments,
    "supports": sorted(name for name in vars(duckdb_engine._supports) if name.startswith("has_")),
}))
"""


def test_a_fresh_process_opens_only_the_catalog_file_and_configures_no_mapper(
    tmp_path: Path,
) -> None:
    """In a new process (a Dagster step's), importing the dialect and committing starts
    DuckDB for the catalog's file alone; duckdb-engine's answers are still there. The
    catalog queries tables, not mapped classes: configuring SQLAlchemy's mappers would
    cost each step process about 10 ms and 2,000 long-lived objects."""
    core.connect(f"duckdb:///{tmp_path / 'c.duckdb'}", tmp_path / "blobs").close()  # created
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(FRESH_PROCESS), str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["opened"] == [str(tmp_path / "c.duckdb")]
    assert report["mappers configured"] is False
    assert report["comments"] is True
    assert report["supports"] == ["has_comment_support", "has_uhugeint_support"]


def test_settings_in_the_url_still_reach_duckdb(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'c.duckdb'}?threads=1&memory_limit=200MB"
    with core.connect(url, tmp_path / "blobs") as catalog:
        with catalog.database.transaction() as session:
            threads = session.scalar(sa.text("SELECT current_setting('threads')"))
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))
    assert threads == 1
