"""Creates the catalog's tables on first connect and records the schema version.

A catalog records the version of the schema it was created with; a later release adds
a migration to ``MIGRATIONS`` (keyed by the version it upgrades *from*) and bumps
``core.storage.models.SCHEMA_VERSION``. Creation and migration run in one transaction, under
the DuckDB file lock or a Postgres advisory lock, so concurrent first connects are safe.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import NotFoundError, OrchestratorError
from core.storage.db import Database
from core.storage.models import (
    SCHEMA_VERSION,
    ArtifactRow,
    Base,
    BlobRefRow,
    JournalMark,
    PublishRequestRow,
    RunIORow,
    RunPinRow,
    SchemaVersion,
    TagMoveRow,
    TagPolicyChangeRow,
    TagPolicyRow,
)
from core.storage.skip_list import skip_nodes

_SCHEMA_LOCK_KEY = 0x6F72636863617401
"""Postgres advisory lock key taken while creating or migrating the schema."""

Migration = Callable[[Session], None]
FILL_BATCH = 1000
"""Rows a statement when a migration fills in a new column."""


def _add_journal_marks(session: Session) -> None:
    """Version 2: the table where a DuckDB catalog's folds mark their last record."""
    JournalMark.__table__.create(session.connection(), checkfirst=True)


def _add_run_publishing(session: Session) -> None:
    """Version 3: runs that publish whole (mode, staged head, outcome) and merge versions
    (a second parent). DuckDB cannot add a reference to a table, so the new id columns of
    a migrated catalog are plain ones; the services keep them valid."""
    for statement in (
        "ALTER TABLE runs ADD COLUMN publish VARCHAR(8) DEFAULT 'output'",
        "ALTER TABLE runs ADD COLUMN head_id UUID",
        "ALTER TABLE runs ADD COLUMN head_revision INTEGER DEFAULT 0",
        "ALTER TABLE runs ADD COLUMN outcome TEXT",
        "ALTER TABLE artifacts ADD COLUMN merged_id UUID",
    ):
        session.execute(sa.text(statement))


def _add_refs_and_policies(session: Session) -> None:
    """Version 4: first-parent skip pointers on artifacts (filled in for every stored
    one), run pins, tag policies and their history, and the indexes behind time-travel
    refs and lineage. DuckDB cannot alter a table that has an index, so the columns come
    before the indexes."""
    connection = session.connection()
    for statement in (
        "ALTER TABLE artifacts ADD COLUMN generation INTEGER DEFAULT 0",
        "ALTER TABLE artifacts ADD COLUMN skip_id UUID",
    ):
        session.execute(sa.text(statement))
    _fill_skip_pointers(session)
    for new in (RunPinRow, TagPolicyRow, TagPolicyChangeRow):
        new.__table__.create(connection, checkfirst=True)
    for indexed in (TagMoveRow, RunIORow, BlobRefRow):
        for index in indexed.__table__.indexes:
            index.create(connection, checkfirst=True)


def _fill_skip_pointers(session: Session) -> None:
    """Give every stored artifact its ``generation`` and ``skip_id``, parents first."""
    artifacts = ArtifactRow.__table__
    parents = {
        row.id: row.parent_id
        for row in session.execute(sa.select(artifacts.c.id, artifacts.c.parent_id))
    }
    children: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    for artifact_id, parent_id in parents.items():
        children.setdefault(parent_id, []).append(artifact_id)
    ordered: list[tuple[uuid.UUID, uuid.UUID | None]] = []
    pending = list(children.get(None, []))
    while pending:
        artifact_id = pending.pop()
        ordered.append((artifact_id, parents[artifact_id]))
        pending += children.get(artifact_id, [])
    nodes = skip_nodes(ordered)
    fill = sa.table(
        "skip_fill", sa.column("id", sa.Uuid), sa.column("generation"), sa.column("skip_id")
    )
    session.execute(
        sa.text("CREATE TEMPORARY TABLE skip_fill (id UUID, generation INTEGER, skip_id UUID)")
    )
    rows = [
        {"id": artifact_id, "generation": node.generation, "skip_id": node.skip_id}
        for artifact_id, node in nodes.items()
    ]
    for start in range(0, len(rows), FILL_BATCH):
        session.execute(sa.insert(fill).values(rows[start : start + FILL_BATCH]))
    session.execute(
        artifacts.update()
        .where(artifacts.c.id == fill.c.id)
        .values(generation=fill.c.generation, skip_id=fill.c.skip_id)
    )
    session.execute(sa.text("DROP TABLE skip_fill"))


def _add_publish_requests(session: Session) -> None:
    """Version 5: publishes waiting on their tag's lock, for the holder to land too."""
    PublishRequestRow.__table__.create(session.connection(), checkfirst=True)


MIGRATIONS: dict[int, Migration] = {
    1: _add_journal_marks,
    2: _add_run_publishing,
    3: _add_refs_and_policies,
    4: _add_publish_requests,
}


def ensure_schema(db: Database, *, create: bool = True) -> int:
    """Create or migrate the catalog's schema; return its version.

    With ``create=False`` a database that holds no catalog is a ``NotFoundError``. A
    current catalog is recognised in one statement, without the lock and without
    reflection (every step process of a Dagster run connects).
    """
    if _recorded_version(db) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    with db.transaction() as session:
        if db.dialect == "postgresql":
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        version = _current_version(session)
        if version == SCHEMA_VERSION:
            return version
        if version is None and not create:
            raise NotFoundError(
                f"no catalog in {db.url.render_as_string(hide_password=True)!r}: "
                "nothing has been stored there"
            )
        if version is None:
            Base.metadata.create_all(session.connection())
        elif version > SCHEMA_VERSION:
            raise OrchestratorError(
                f"catalog schema version {version} is newer than this release supports "
                f"({SCHEMA_VERSION}); upgrade the package"
            )
        else:
            for from_version in range(version, SCHEMA_VERSION):
                MIGRATIONS[from_version](session)
        session.execute(sa.delete(SchemaVersion))
        session.add(SchemaVersion(version=SCHEMA_VERSION, applied_at=datetime.now(UTC)))
        return SCHEMA_VERSION


_RECORDED_VERSION = sa.select(sa.func.max(SchemaVersion.__table__.c.version))
"""On the table, not the mapped class: a query of a mapped class configures every mapper
(about 10 ms and 2,000 objects in each process that connects), and a commit needs none."""


def _recorded_version(db: Database) -> int | None:
    """The schema version a catalog records, read outside a transaction on Postgres
    (``None``: it has no version table yet)."""
    try:
        with db.transaction(autocommit=True) as session:
            recorded: int | None = session.scalar(_RECORDED_VERSION)
            return recorded
    except sa.exc.ProgrammingError:  # no such table: created under the lock
        return None


def _current_version(session: Session) -> int | None:
    if not sa.inspect(session.connection()).has_table(SchemaVersion.__tablename__):
        return None
    return session.scalar(sa.select(sa.func.max(SchemaVersion.version)))
