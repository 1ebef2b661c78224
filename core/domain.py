"""Frozen value objects that services return and accept (never ORM rows)."""

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class ArtifactKind(enum.StrEnum):
    """The three kinds of catalog artifact."""

    DAG_VERSION = "dag_version"
    PATCH_SET = "patch_set"
    RUN_SNAPSHOT = "run_snapshot"


class RunStatus(enum.StrEnum):
    """Lifecycle of a run recorded in the catalog."""

    STARTED = "started"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob's catalog entry."""

    cas_id: str
    size: int
    media_type: str
    created_at: datetime


@dataclass(frozen=True)
class Artifact:
    """An immutable catalog entry: a DAG version, a patch set or a run snapshot."""

    id: uuid.UUID
    kind: ArtifactKind
    version_hash: str
    cas_id: str
    parent_id: uuid.UUID | None
    name: str
    created_at: datetime
    created_by: str | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tag:
    """A named, movable pointer at one artifact; ``revision`` counts its moves."""

    name: str
    target_kind: ArtifactKind
    target_id: uuid.UUID
    revision: int
    created_at: datetime
    updated_at: datetime
    updated_by: str | None


@dataclass(frozen=True)
class TagMove:
    """One row of a tag's append-only history (its reflog).

    A create has no ``from_target_id``; a delete has no ``to_target_id``.
    """

    id: int
    tag_name: str
    from_target_id: uuid.UUID | None
    to_target_id: uuid.UUID | None
    revision: int
    moved_at: datetime
    moved_by: str | None
    reason: str | None
    run_id: str | None


@dataclass(frozen=True)
class Run:
    """A run's catalog record, pinned to the snapshot taken when it began."""

    run_id: str
    snapshot_id: uuid.UUID
    base_id: uuid.UUID | None
    tag: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    job_name: str | None = None


@dataclass(frozen=True)
class CreateWorkflowRequest:
    """Store ``dag`` as a new version of the workflow and move ``tag`` to it."""

    name: str
    dag: dict[str, Any]
    tag: str = "main"
    expected_revision: int | None = None
    created_by: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class CreateWorkflowResponse:
    """Where a workflow commit landed: the artifact and the tag's new revision."""

    artifact_id: uuid.UUID
    version_hash: str
    cas_id: str
    tag: str
    revision: int
    changed: bool = True
    from_target_id: uuid.UUID | None = None
