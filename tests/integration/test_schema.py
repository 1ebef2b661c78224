"""Schema creation on first connect: idempotent, versioned, safe under concurrency."""

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

import core
from core.storage.models import SCHEMA_VERSION
from tests.support import workers
from tests.support.helpers import DAG, started_pool


def schema_versions(catalog: core.Services) -> list[int]:
    with catalog.database.transaction() as session:
        return list(session.scalars(sa.text("SELECT version FROM schema_version")))


def test_schema_is_created_once_and_versioned(database_url: str, blob_root: Path) -> None:
    with core.connect(database_url, blob_root) as catalog:
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))
    with core.connect(database_url, blob_root) as again:
        assert again.workflows.get_workflow_by_tag("main") == DAG
        assert schema_versions(again) == [SCHEMA_VERSION]


def test_opening_only_an_existing_catalog_creates_nothing(
    database_url: str, blob_root: Path
) -> None:
    with pytest.raises(core.NotFoundError, match=r"no catalog (at|in) '.*': nothing has been"):
        core.connect(database_url, blob_root, create=False)
    with core.connect(database_url, blob_root) as catalog:  # nothing was made: a fresh one
        with catalog.database.transaction() as session:
            assert session.scalar(sa.text("SELECT count(*) FROM artifacts")) == 0
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", DAG))
    with core.connect(database_url, blob_root, create=False) as existing:
        assert existing.workflows.get_workflow_by_tag("main") == DAG


def test_an_existing_catalog_is_not_made_in_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "catalog.duckdb"
    with pytest.raises(core.NotFoundError, match=re.escape(f"no catalog at '{missing}'")):
        core.connect(f"duckdb:///{missing}", tmp_path / "blobs", create=False)
    assert not missing.parent.exists()


def test_a_newer_catalog_is_refused(database_url: str, blob_root: Path) -> None:
    with core.connect(database_url, blob_root) as catalog, catalog.database.transaction() as s:
        s.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(core.OrchestratorError, match=f"version {SCHEMA_VERSION + 1} is newer"):
        core.connect(database_url, blob_root)


@pytest.mark.slow
def test_concurrent_first_connects(database_url: str, blob_root: Path) -> None:
    with started_pool(3) as (pool, start_at):
        futures = [
            pool.submit(workers.first_connect, database_url, str(blob_root), start_at)
            for _ in range(3)
        ]
        assert [future.result() for future in futures] == [SCHEMA_VERSION] * 3
    with core.connect(database_url, blob_root) as catalog:
        assert schema_versions(catalog) == [SCHEMA_VERSION]


def test_defaults_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with core.connect() as catalog:
        assert catalog.database.url.database == str(tmp_path / ".orchestrator/catalog.duckdb")
        assert catalog.blob_root == tmp_path / ".orchestrator/blobs"
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", f"duckdb:///{tmp_path / 'env.duckdb'}")
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(tmp_path / "env-blobs"))
    with core.connect() as catalog:
        assert catalog.database.url.database == str(tmp_path / "env.duckdb")
        assert catalog.blob_root == tmp_path / "env-blobs"


@pytest.mark.parametrize("url", ["sqlite:///x.db", "duckdb:///:memory:", "mysql://h/db"])
def test_unsupported_urls_are_rejected(url: str, tmp_path: Path) -> None:
    with pytest.raises(core.ValidationError, match=r"url|file path"):
        core.connect(url, tmp_path)


def test_an_unreachable_server_is_a_clear_error() -> None:
    url = "postgresql+psycopg://someone:secret@127.0.0.1:1/catalog"  # nothing listens on 1
    with pytest.raises(core.StorageUnavailableError) as raised:
        core.connect(url)
    message = str(raised.value)
    assert "cannot reach the catalog database" in message
    assert "someone:***@127.0.0.1:1/catalog" in message and "secret" not in message
