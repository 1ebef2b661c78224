"""The catalog's tables as SQLAlchemy 2 typed ORM classes (tables only, no behaviour).

DuckDB refuses to UPDATE a row that another table references by a foreign key, so the
rows that change (``tags``, ``runs``) are never the target of one. Timestamps are naive
UTC; repositories attach the time zone.
"""

import uuid
from datetime import datetime
from typing import ClassVar

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.identifiers import MAX_PIN_REF

SCHEMA_VERSION = 5
"""Bump with a migration in ``core.storage.schema`` whenever a table below changes."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CAS_ID = String(71)
TAG_NAME = String(200)
RUN_ID = String(200)
REF = String(MAX_PIN_REF)
tag_move_id_seq = Sequence("tag_move_id_seq")
policy_change_id_seq = Sequence("tag_policy_change_id_seq")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Every model here maps a plain Table (SQLAlchemy types it as any FromClause).
    __table__: ClassVar[Table]


class SchemaVersion(Base):
    __tablename__ = "schema_version"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime] = mapped_column(DateTime)


class CasBlob(Base):
    __tablename__ = "cas_blobs"

    cas_id: Mapped[str] = mapped_column(CAS_ID, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    version_hash: Mapped[str] = mapped_column(CAS_ID, unique=True)
    cas_id: Mapped[str] = mapped_column(ForeignKey(CasBlob.cas_id))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"))
    merged_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"))
    """A merge version's second parent: the version it merged."""
    generation: Mapped[int] = mapped_column(Integer, default=0)
    """How many first parents lie below this artifact (a first version is 0)."""
    skip_id: Mapped[uuid.UUID | None]
    """A first-parent ancestor further down (itself for a first version): with
    ``generation``, a skew-binary skip list, so ``REF~N`` takes O(log N) steps."""
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str | None] = mapped_column(String(255))
    metadata_json: Mapped[str] = mapped_column("metadata", Text)


class TagRow(Base):
    """A tag; a deleted tag keeps its row with no target so its revision keeps counting."""

    __tablename__ = "tags"

    name: Mapped[str] = mapped_column(TAG_NAME, primary_key=True)
    target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(ArtifactRow.id))
    target_kind: Mapped[str | None] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    updated_by: Mapped[str | None] = mapped_column(String(255))


class TagMoveRow(Base):
    """Append-only tag history; ``id`` is the sensors' cursor."""

    __tablename__ = "tag_moves"
    __table_args__ = (
        UniqueConstraint("tag_name", "revision"),
        Index(None, "tag_name", "moved_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, tag_move_id_seq, primary_key=True)
    tag_name: Mapped[str] = mapped_column(TAG_NAME)
    from_target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(ArtifactRow.id))
    to_target_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(ArtifactRow.id))
    revision: Mapped[int] = mapped_column(Integer)
    moved_at: Mapped[datetime] = mapped_column(DateTime)
    moved_by: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(RUN_ID)


class RunRow(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(RUN_ID, primary_key=True)
    snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(ArtifactRow.id))
    base_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(ArtifactRow.id))
    tag: Mapped[str] = mapped_column(TAG_NAME)
    job_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    publish: Mapped[str] = mapped_column(String(8), default="output")
    """``output``: each output moves the tag; ``run``: outputs stage on ``head_id``."""
    head_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey(ArtifactRow.id))
    """A ``publish="run"`` run's staged head (``None``: still at its base)."""
    head_revision: Mapped[int] = mapped_column(Integer, default=0)
    """How many times the staged head moved (its compare-and-swap counter)."""
    outcome: Mapped[str | None] = mapped_column(Text)
    """How publishing the run ended, as JSON (``None``: not tried yet)."""


class RunIORow(Base):
    """Lineage: which blob a run produced or read for each node (and partition)."""

    __tablename__ = "run_io"
    __table_args__ = (Index(None, "cas_id"),)

    run_id: Mapped[str] = mapped_column(RUN_ID, primary_key=True)
    direction: Mapped[str] = mapped_column(String(8), primary_key=True)
    node: Mapped[str] = mapped_column(String(1000), primary_key=True)
    partition_key: Mapped[str] = mapped_column(String(1000), primary_key=True)
    cas_id: Mapped[str] = mapped_column(ForeignKey(CasBlob.cas_id))
    media_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(DateTime)


class BlobRefRow(Base):
    """The blobs an artifact's content names (node values): what ``gc`` must keep."""

    __tablename__ = "blob_refs"
    __table_args__ = (Index(None, "cas_id"),)

    artifact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(ArtifactRow.id), primary_key=True)
    cas_id: Mapped[str] = mapped_column(ForeignKey(CasBlob.cas_id), primary_key=True)


class JournalMark(Base):
    """The last journal record a fold applied to a DuckDB catalog (one row, ``name``
    ``"journal"``): recovering a journal starts after it."""

    __tablename__ = "journal_marks"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    record_id: Mapped[uuid.UUID]
    folded_at: Mapped[datetime] = mapped_column(DateTime)


class RunPinRow(Base):
    """What a run resolved a ref to, the first time it read through it: a run reads one
    version of each tag and ref however they move (``TAG@{run:<run id>}``)."""

    __tablename__ = "run_pins"

    run_id: Mapped[str] = mapped_column(RUN_ID, primary_key=True)
    ref: Mapped[str] = mapped_column(REF, primary_key=True)
    artifact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey(ArtifactRow.id))
    pinned_at: Mapped[datetime] = mapped_column(DateTime)


class TagPolicyRow(Base):
    """A policy for the tags whose names match ``pattern`` (a glob)."""

    __tablename__ = "tag_policies"

    pattern: Mapped[str] = mapped_column(TAG_NAME, primary_key=True)
    immutable: Mapped[bool] = mapped_column(Boolean)
    protected: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    updated_by: Mapped[str | None] = mapped_column(String(255))


class TagPolicyChangeRow(Base):
    """Append-only history of policy changes; ``None`` flags: no policy (before a first
    set, after a delete)."""

    __tablename__ = "tag_policy_changes"

    id: Mapped[int] = mapped_column(BigInteger, policy_change_id_seq, primary_key=True)
    pattern: Mapped[str] = mapped_column(TAG_NAME)
    old_immutable: Mapped[bool | None] = mapped_column(Boolean)
    old_protected: Mapped[bool | None] = mapped_column(Boolean)
    new_immutable: Mapped[bool | None] = mapped_column(Boolean)
    new_protected: Mapped[bool | None] = mapped_column(Boolean)
    changed_at: Mapped[datetime] = mapped_column(DateTime)
    changed_by: Mapped[str | None] = mapped_column(String(255))


class PublishRequestRow(Base):
    """A publish waiting on its tag's lock (Postgres): whichever publisher holds the lock
    lands it too, while its own publisher still waits, and leaves the move here."""

    __tablename__ = "publish_requests"
    __table_args__ = (Index(None, "tag", "requested_at"),)

    run_id: Mapped[str] = mapped_column(RUN_ID, primary_key=True)
    token: Mapped[uuid.UUID]
    """Names the call that asked: only that call reports the move as its own."""
    wait_key: Mapped[int] = mapped_column(Integer)
    """The advisory lock its publisher holds while it waits (alive and waiting)."""
    tag: Mapped[str] = mapped_column(TAG_NAME)
    base_id: Mapped[uuid.UUID | None]
    source_id: Mapped[uuid.UUID]
    """The run's staged head when it asked."""
    moved_by: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    changes: Mapped[str] = mapped_column(Text)
    """What the run changed from its base, as JSON (``core.merge.ChangeSet``)."""
    requested_at: Mapped[datetime] = mapped_column(DateTime)
    revision: Mapped[int | None] = mapped_column(Integer)
    """Once landed: the tag's revision after the move (``None``: waiting)."""
    from_target_id: Mapped[uuid.UUID | None]
    to_target_id: Mapped[uuid.UUID | None]
    fast_forward: Mapped[bool | None] = mapped_column(Boolean)


# A request lives while its publisher waits: nothing of it needs the write-ahead log, so a
# publisher's own transactions (asking, withdrawing) commit without waiting for a flush.
# After a crash Postgres empties the table, and its publishers are gone with their sessions.
event.listen(
    PublishRequestRow.__table__,
    "after_create",
    DDL("ALTER TABLE publish_requests SET UNLOGGED").execute_if(dialect="postgresql"),  # type: ignore[no-untyped-call]
)
