"""What a caller's transaction that rolls back leaves behind: nothing, not even in the
services' in-process caches (which learn only from committed transactions)."""

import pytest
import sqlalchemy as sa

import core
from core.storage.db import Database

DAG = {"nodes": {"a": {"deps": []}}}


def test_a_rolled_back_version_and_run_leave_no_cached_trace(catalog: core.Services) -> None:
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", DAG))
    with pytest.raises(RuntimeError), catalog.database.transaction():
        cas_id = catalog.cas.store_content(b'{"nodes": {"b": {"deps": []}}}')
        artifact_id = catalog.artifacts.create_dag_version("w", cas_id)
        assert catalog.artifacts.resolve(artifact_id) == {"nodes": {"b": {"deps": []}}}
        catalog.runs.create_run("run-1", "main")
        assert catalog.runs.pin("run-1", "main")  # seen inside the transaction
        raise RuntimeError("the caller rolls back")
    with pytest.raises(core.NotFoundError):
        catalog.artifacts.get_by_id(artifact_id)
    with pytest.raises(core.NotFoundError):
        catalog.artifacts.resolve(artifact_id)
    with pytest.raises(core.NotFoundError):
        catalog.tags.create_tag("t", artifact_id)
    with pytest.raises(core.NotFoundError):
        catalog.runs.get_run("run-1")
    # the run pins afresh: its first output records a run that exists
    catalog.assets.commit_output("run-1", "main", "x", b"1", media_type="application/json")
    assert catalog.runs.get_run("run-1").tag == "main"
    assert [io.node for io in catalog.runs.get_run_io("run-1")] == ["x"]


def test_what_a_committed_caller_transaction_cached_is_seen_afterwards(
    catalog: core.Services,
) -> None:
    catalog.workflows.create_workflow(core.CreateWorkflowRequest("w", DAG))
    with catalog.database.transaction():
        catalog.runs.create_run("run-1", "main")
        value = catalog.assets.commit_output(
            "run-1", "main", "x", b"1", media_type="application/json"
        ).value
    assert catalog.assets.locate_input("run-1", "main", "x") == value
    assert catalog.runs.pin("run-1", "main") == (
        catalog.runs.get_run("run-1").snapshot_id,
        catalog.runs.get_run("run-1").base_id,
    )


def test_autocommit_commits_each_statement_and_leaves_the_connection_transactional(
    postgres_schema_url: str,
) -> None:
    """A publisher waits for its turn outside a transaction, on the connection its next
    transactions use: statements there commit as they run, and the transaction after
    rolls back as any other."""
    database, other = Database(postgres_schema_url), sa.create_engine(postgres_schema_url)
    count = sa.text("SELECT count(*) FROM scratch")
    try:
        with other.begin() as connection:
            connection.execute(sa.text("CREATE TABLE scratch (x int)"))
        with database.one_connection():
            with pytest.raises(RuntimeError), database.transaction(autocommit=True) as session:
                session.execute(sa.text("INSERT INTO scratch VALUES (1)"))
                with other.connect() as connection:  # committed before the block ends
                    assert connection.execute(count).scalar_one() == 1
                raise RuntimeError("nothing to undo")
            with pytest.raises(RuntimeError), database.transaction() as session:
                session.execute(sa.text("INSERT INTO scratch VALUES (2)"))
                raise RuntimeError("rolled back")
        with other.connect() as connection:
            assert connection.execute(count).scalar_one() == 1
    finally:
        database.dispose()
        other.dispose()
