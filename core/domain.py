"""Frozen value objects that services return and accept (never ORM rows).

They are ``final``: no subclass can make one falsy, so ``tag and tag.target_id`` is typed
``UUID | None``.
"""

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, final


class ArtifactKind(enum.StrEnum):
    """The three kinds of catalog artifact."""

    DAG_VERSION = "dag_version"
    PATCH_SET = "patch_set"
    RUN_SNAPSHOT = "run_snapshot"


class PublishMode(enum.StrEnum):
    """How a run's outputs reach its tag."""

    OUTPUT = "output"
    """Each output moves the tag as it is committed (the default)."""
    RUN = "run"
    """Outputs stage on the run's own head; ``publish`` moves the tag once, at the end."""


class OutcomeState(enum.StrEnum):
    """How publishing a ``publish="run"`` run ended."""

    PUBLISHED = "published"
    UNCHANGED = "unchanged"
    CHECKS_FAILED = "checks_failed"
    FAILED = "failed"
    CONFLICT = "conflict"
    REFUSED = "refused"
    """A tag policy refused the move (``core.errors.PolicyError``)."""


class RunStatus(enum.StrEnum):
    """Lifecycle of a run recorded in the catalog."""

    STARTED = "started"
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"


@final
@dataclass(frozen=True)
class Blob:
    """A content-addressed blob's catalog entry."""

    cas_id: str
    size: int
    media_type: str
    created_at: datetime


@final
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
    merged_id: uuid.UUID | None = None
    """A merge version's second parent: the version it merged."""


@final
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


@final
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


@final
@dataclass(frozen=True)
class TagPolicy:
    """What may move the tags whose names match ``pattern`` (a glob: ``v*``,
    ``release/*``, ``main``). ``immutable``: created once, never moved or deleted;
    ``protected``: moved only by publishing a run or merging. Neither: no rule (a more
    specific pattern that exempts names from a broader one)."""

    pattern: str
    immutable: bool
    protected: bool
    updated_at: datetime
    updated_by: str | None


@final
@dataclass(frozen=True)
class TagPolicyChange:
    """One change of a policy (append-only): its flags before and after, ``None`` where
    there was no policy (before the first set, after a delete)."""

    id: int
    pattern: str
    old_immutable: bool | None
    old_protected: bool | None
    new_immutable: bool | None
    new_protected: bool | None
    changed_at: datetime
    changed_by: str | None


@final
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
    publish: PublishMode = PublishMode.OUTPUT
    head_id: uuid.UUID | None = None
    """A ``publish="run"`` run's staged head (``None``: nothing staged, it is at its base)."""
    outcome: "RunOutcome | None" = None
    """How publishing it ended (``None``: not tried yet)."""


@final
@dataclass(frozen=True)
class RunOutcome:
    """How publishing a run ended: ``revision`` and ``to_target_id`` of the tag once
    published; the failed ``checks``; the ``conflicts`` (node, partition key)."""

    state: OutcomeState
    revision: int | None = None
    to_target_id: uuid.UUID | None = None
    checks: tuple[str, ...] = ()
    conflicts: tuple[tuple[str, str | None], ...] = ()


@final
@dataclass(frozen=True)
class Publication:
    """A run published: its tag moved once, from ``from_target_id`` to ``to_target_id``
    (the staged head itself when ``fast_forward``, else a merge version); ``changed`` is
    false when nothing moved (nothing staged, or published already)."""

    run_id: str
    tag: str
    from_target_id: uuid.UUID | None
    to_target_id: uuid.UUID | None
    revision: int
    fast_forward: bool
    changed: bool


@final
@dataclass(frozen=True)
class MergeResult:
    """A merge into ``tag``: from ``from_target_id`` to ``to_target_id`` at ``revision``;
    ``changed`` false when it moved nothing (``dry_run`` results never move)."""

    tag: str
    from_target_id: uuid.UUID | None
    to_target_id: uuid.UUID | None
    revision: int
    fast_forward: bool
    changed: bool


class Direction(enum.StrEnum):
    """Whether a run produced or read a value."""

    OUTPUT = "output"
    INPUT = "input"


@final
@dataclass(frozen=True)
class RunIO:
    """One value a run produced or read: the lineage of a blob."""

    run_id: str
    direction: Direction
    node: str
    partition_key: str | None
    cas_id: str
    media_type: str
    size: int
    recorded_at: datetime


@final
@dataclass(frozen=True)
class BlobUse:
    """A run that produced or read a blob, for one node (and partition): its lineage
    row with the run's tag, job, status and way of publishing."""

    run_id: str
    direction: Direction
    node: str
    partition_key: str | None
    recorded_at: datetime
    """When the run recorded the value (for an output, when its commit was written)."""
    tag: str
    job_name: str | None
    status: str
    publish: PublishMode


@final
@dataclass(frozen=True)
class BlobLineage:
    """The runs that produced a blob and the runs that read it, each oldest first."""

    blob: Blob
    produced_by: tuple[BlobUse, ...]
    read_by: tuple[BlobUse, ...]


@final
@dataclass(frozen=True)
class BlameEntry:
    """Where one value of a version comes from.

    ``since`` is the oldest version on the blamed version's first-parent line from which
    this node (or partition) held ``cas_id`` without a break up to the blamed version;
    ``produced_by`` is the earliest run that recorded an output of these bytes for this
    node and partition (``None``: no run did, the value was written by hand).
    """

    node: str
    partition_key: str | None
    cas_id: str
    media_type: str | None
    size: int | None
    since: Artifact
    produced_by: BlobUse | None


@final
@dataclass(frozen=True)
class Blame:
    """Each value of ``version`` (what ``ref`` resolved to), in node and partition order."""

    ref: str
    version: Artifact
    entries: tuple[BlameEntry, ...]


@final
@dataclass(frozen=True)
class NodeValue:
    """Where a node's (or one partition's) value is stored."""

    node: str
    partition_key: str | None
    cas_id: str
    media_type: str
    size: int


@final
@dataclass(frozen=True)
class WorkflowMove:
    """A tag move with the version it landed on and the nodes it changed."""

    move: TagMove
    version_hash: str | None
    changed_nodes: frozenset[str]


@final
@dataclass(frozen=True)
class MovesPage:
    """Moves newer than a cursor, and the cursor to poll from next."""

    moves: list[WorkflowMove]
    cursor: int


@final
@dataclass(frozen=True)
class OutputCommit:
    """The outcome of committing one asset output to a tag."""

    value: NodeValue
    tag: str
    artifact_id: uuid.UUID
    version_hash: str
    from_target_id: uuid.UUID | None
    revision: int
    changed: bool
    from_version_hash: str | None = None


@final
@dataclass(frozen=True)
class CreateWorkflowRequest:
    """Store ``dag`` as a new version of the workflow and move ``tag`` to it."""

    name: str
    dag: dict[str, Any]
    tag: str = "main"
    expected_revision: int | None = None
    created_by: str | None = None
    message: str | None = None


@final
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
    from_version_hash: str | None = None


@final
@dataclass(frozen=True)
class GcReport:
    """What a garbage collection removed (or, in a dry run, would remove)."""

    removed: list[str]
    removed_bytes: int
    kept_recent: int
    """Unreferenced blobs kept because they were stored within the grace period (files
    with no catalog row: within the last hour, at least)."""
    dry_run: bool


@final
@dataclass(frozen=True)
class BlobProblem:
    """A referenced blob that is missing or whose bytes do not hash to its id."""

    cas_id: str
    problem: str
    artifact_ids: list[uuid.UUID]
    tags: list[str]


@final
@dataclass(frozen=True)
class VerifyReport:
    """The outcome of re-hashing every referenced blob."""

    checked: int
    problems: list[BlobProblem]
