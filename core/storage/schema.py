"""Creates the catalog's tables on first connect and records the schema version.

A catalog records the version of the schema it was created with; a later release adds
a migration to ``MIGRATIONS`` (keyed by the version it upgrades *from*) and bumps
``core.storage.models.SCHEMA_VERSION``. Creation and migration run in one transaction, under
the DuckDB file lock or a Postgres advisory lock, so concurrent first connects are safe.
"""

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from core.errors import NotFoundError, OrchestratorError
from core.storage.db import Database
from core.storage.models import SCHEMA_VERSION, Base, JournalMark, SchemaVersion

_SCHEMA_LOCK_KEY = 0x6F72636863617401
"""Postgres advisory lock key taken while creating or migrating the schema."""

Migration = Callable[[Session], None]


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


MIGRATIONS: dict[int, Migration] = {1: _add_journal_marks, 2: _add_run_publishing}


def ensure_schema(db: Database, *, create: bool = True) -> int:
    """Create or migrate the catalog's schema; return its version.

    With ``create=False`` a database that holds no catalog is a ``NotFoundError``.
    """
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


def _current_version(session: Session) -> int | None:
    if not sa.inspect(session.connection()).has_table(SchemaVersion.__tablename__):
        return None
    return session.scalar(sa.select(sa.func.max(SchemaVersion.version)))
