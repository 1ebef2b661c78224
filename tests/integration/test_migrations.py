"""A catalog created by an older release opens with this one: its data kept, the new
columns filled in, the new tables and indexes there."""

import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

import core
from core.domain import ArtifactKind
from core.storage.commit_record import CommitRecord, NewVersion, TagSwap
from core.storage.db import Database
from core.storage.duckdb.journal import Journal
from core.storage.duckdb.record_format import encode
from core.storage.models import SCHEMA_VERSION
from core.storage.schema import ensure_schema

SCHEMAS = Path(__file__).parent.parent / "support" / "schemas"
BLOB = "sha256:" + "ab" * 32


def create_version_3(database_url: str, line: int) -> list[uuid.UUID]:
    """A catalog as schema 3 (``tests/support/schemas/v3.sql``) with one blob, a line of
    ``line`` versions and a merge version off its middle, and ``main`` at the line's end;
    the line's ids, oldest first."""
    engine = sa.create_engine(database_url)
    ids = [uuid.uuid4() for _ in range(line)]
    side = uuid.uuid4()
    now = datetime(2026, 11, 1)
    with engine.begin() as connection:
        for statement in (SCHEMAS / "v3.sql").read_text().split(";\n"):
            if statement.strip():
                connection.exec_driver_sql(statement)
        connection.execute(sa.text("INSERT INTO schema_version VALUES (3, :now)"), {"now": now})
        connection.execute(
            sa.text("INSERT INTO cas_blobs VALUES (:cas_id, 2, 'application/json', :now)"),
            {"cas_id": BLOB, "now": now},
        )
        rows = [(artifact_id, ids[i - 1] if i else None) for i, artifact_id in enumerate(ids)]
        rows.append((side, ids[line // 2]))
        for number, (artifact_id, parent_id) in enumerate(rows):
            connection.execute(
                sa.text(
                    "INSERT INTO artifacts (id, kind, version_hash, cas_id, parent_id, name, "
                    "created_at, metadata) VALUES (:id, 'dag_version', :hash, :cas_id, "
                    ":parent_id, 'line', :now, '{}')"
                ),
                {
                    "id": artifact_id,
                    "hash": f"sha256:{number:064x}",
                    "cas_id": BLOB,
                    "parent_id": parent_id,
                    "now": now,
                },
            )
        connection.execute(
            sa.text("INSERT INTO tags VALUES ('main', :id, 'dag_version', 1, :now, :now, NULL)"),
            {"id": ids[-1], "now": now},
        )
    engine.dispose()
    return ids


def test_a_version_3_catalog_is_migrated_with_its_data(database_url: str, tmp_path: Path) -> None:
    ids = create_version_3(database_url, 40)
    with core.connect(database_url, tmp_path / "blobs") as catalog:
        with catalog.database.transaction() as session:
            assert session.scalar(sa.text("SELECT version FROM schema_version")) == SCHEMA_VERSION
            tables = set(sa.inspect(session.connection()).get_table_names())
            generations = {
                row.id: row.generation
                for row in session.execute(sa.text("SELECT id, generation FROM artifacts"))
            }
        assert {"run_pins", "tag_policies", "tag_policy_changes"} <= tables
        assert [generations[artifact_id] for artifact_id in ids] == list(range(40))
        assert catalog.tags.get_tag("main").target_id == ids[-1]
        for distance in (1, 7, 39):
            assert catalog.refs.resolve(f"main~{distance}").id == ids[39 - distance]
        with pytest.raises(core.NotFoundError):
            catalog.refs.resolve("main~40")
        with core.connect(database_url, tmp_path / "blobs") as again:  # opens as it is
            assert again.refs.resolve(f"{ids[-1]}~39").id == ids[0]


def test_a_version_3_catalog_with_a_journal_left_behind_is_migrated_then_folded(
    tmp_path: Path,
) -> None:
    """A release-3 writer died holding the file: its journal folds after the migration,
    so its versions get their skip pointers and nothing acknowledged is lost."""
    path = tmp_path / "catalog.duckdb"
    ids = create_version_3(f"duckdb:///{path}", 3)
    added = uuid.uuid4()
    record = CommitRecord(
        datetime(2026, 11, 2),
        version=NewVersion(
            id=added,
            kind=ArtifactKind.DAG_VERSION,
            version_hash=f"sha256:{99:064x}",
            cas_id=BLOB,
            parent_id=ids[-1],
            name="line",
            created_by=None,
            metadata_json="{}",
        ),
        swap=TagSwap("main", ids[-1], 1, added, ArtifactKind.DAG_VERSION, None, None, None),
    )
    Journal(path.with_name(path.name + ".journal")).append(encode(uuid.uuid4(), record))
    with core.connect(f"duckdb:///{path}", tmp_path / "blobs") as catalog:
        assert catalog.tags.get_tag("main").target_id == added
        assert catalog.refs.resolve("main~1").id == ids[-1]
        assert catalog.refs.resolve("main~3").id == ids[0]


def test_a_current_catalog_is_recognised_in_one_statement(
    database_url: str, tmp_path: Path
) -> None:
    """Every Dagster step process opens the catalog: a current one costs one query, with
    no reflection and no lock."""
    core.connect(database_url, tmp_path / "blobs").close()
    database = Database(database_url)
    sent: list[str] = []
    sa.event.listen(
        database.engine,
        "before_cursor_execute",
        lambda connection, cursor, statement, *rest: sent.append(" ".join(statement.split())),
    )
    try:
        assert ensure_schema(database) == SCHEMA_VERSION
    finally:
        database.dispose()
    assert sent == ["SELECT max(schema_version.version) AS max_1 FROM schema_version"]
