"""Request and response bodies of the HTTP API (they are its OpenAPI contract)."""

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

import core
from core.identifiers import check_revision

Revision = Annotated[int, BeforeValidator(check_revision)]
"""A tag revision as the core takes it, checked on the raw JSON value: ``true``,
``1.0`` and ``"1"`` are a 422 naming the field, never revision 1."""


class ConflictOut(BaseModel):
    node: str
    partition_key: str | None = Field(description="The partition; null: the node's own value.")

    @classmethod
    def all(cls, conflicts: Sequence[tuple[str, str | None]]) -> list["ConflictOut"]:
        return [cls(node=node, partition_key=key) for node, key in conflicts]


class ErrorDetail(BaseModel):
    type: str = Field(
        description="not_found, policy, conflict, validation, busy, unavailable, integrity, "
        "internal, no_route (no such route: a 404 no handler answered) or http."
    )
    message: str
    field: str | None = Field(default=None, description="The offending field, if any.")
    value: Any = Field(default=None, description="The offending value, if any.")
    current_target: str | None = Field(default=None, description="On conflict: the target now.")
    current_revision: int | None = Field(default=None, description="On conflict: the revision.")
    conflicts: list[ConflictOut] | None = Field(
        default=None,
        description="On a merge conflict: each value both sides changed differently.",
    )
    tag: str | None = Field(default=None, description="On a policy refusal: the tag.")
    pattern: str | None = Field(
        default=None, description="On a policy refusal: the pattern of the policy that refused."
    )


class ErrorBody(BaseModel):
    error: ErrorDetail


class CreateWorkflowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="The workflow's name.")
    dag: dict[str, Any] = Field(description='A DAG document: {"nodes": {"<id>": {"deps": []}}}.')
    tag: str = Field(default="main", description="The tag to move.")
    expected_revision: Revision | None = Field(default=None, description="Compare-and-swap.")
    created_by: str | None = None
    message: str | None = None


class WorkflowCommitOut(BaseModel):
    artifact_id: uuid.UUID
    version_hash: str
    cas_id: str
    tag: str
    revision: int
    changed: bool
    from_target_id: uuid.UUID | None

    @classmethod
    def of(cls, response: core.CreateWorkflowResponse) -> "WorkflowCommitOut":
        return cls.model_validate(response, from_attributes=True)


class CreateRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    tag: str = "main"
    job_name: str | None = None
    publish: core.PublishMode = Field(
        default=core.PublishMode.OUTPUT,
        description="output: each output moves the tag; run: outputs stage, publish lands them.",
    )


class FinishRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(description="success, failure or canceled.")


class EndRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(
        description="success, failure or canceled (a status recorded before stands)."
    )
    finished_at: datetime | None = Field(default=None, description="When it ended (default: now).")
    failed_checks: list[str] = Field(
        default=[], description="publish=run: its failed checks of severity ERROR (the audit's)."
    )


class OutcomeOut(BaseModel):
    state: core.OutcomeState
    revision: int | None = Field(description="The tag's revision once published.")
    to_target_id: uuid.UUID | None = Field(description="The version published.")
    checks: list[str] = Field(description="checks_failed: the failed checks.")
    conflicts: list[ConflictOut] = Field(description="conflict: what conflicted.")

    @classmethod
    def of(cls, outcome: core.RunOutcome) -> "OutcomeOut":
        return cls(
            state=outcome.state,
            revision=outcome.revision,
            to_target_id=outcome.to_target_id,
            checks=list(outcome.checks),
            conflicts=ConflictOut.all(outcome.conflicts),
        )


class RunOut(BaseModel):
    run_id: str
    snapshot_id: uuid.UUID
    base_id: uuid.UUID | None
    tag: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    job_name: str | None
    publish: core.PublishMode
    head_id: uuid.UUID | None = Field(description="publish=run: the staged head (null: none).")
    outcome: OutcomeOut | None = Field(description="How publishing it ended (null: not tried).")

    @classmethod
    def of(cls, run: core.Run) -> "RunOut":
        return cls(
            run_id=run.run_id,
            snapshot_id=run.snapshot_id,
            base_id=run.base_id,
            tag=run.tag,
            status=run.status,
            started_at=run.started_at,
            finished_at=run.finished_at,
            job_name=run.job_name,
            publish=run.publish,
            head_id=run.head_id,
            outcome=None if run.outcome is None else OutcomeOut.of(run.outcome),
        )


class PublishRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    moved_by: str | None = Field(default=None, description="Who publishes (history).")
    reason: str | None = Field(default=None, description="Why (history).")


class PublicationOut(BaseModel):
    run_id: str
    tag: str
    from_target_id: uuid.UUID | None
    to_target_id: uuid.UUID | None
    revision: int
    fast_forward: bool
    changed: bool = Field(description="False: nothing moved (published before, nothing staged).")

    @classmethod
    def of(cls, publication: core.Publication) -> "PublicationOut":
        return cls.model_validate(publication, from_attributes=True)


class PinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: str
    tag: str = "main"
    job_name: str | None = None
    at_version: str | None = Field(
        default=None, description="Pin to this version (a tag_move_sensor's run), not the tag's."
    )
    publish: str | None = Field(
        default=None, description="output or run; null: the run's mode (output for a new run)."
    )
    parent_run_id: str | None = Field(
        default=None, description="The run a re-execution re-executes."
    )


class PinOut(BaseModel):
    run_id: str
    snapshot_id: uuid.UUID
    base_id: uuid.UUID | None


class OutputQuery(BaseModel):
    """Where a step's output goes (the request's body is its bytes)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    tag: str
    node: str
    media_type: str
    deps: list[str] = Field(default_factory=list, description="Asset outputs: the upstreams.")
    partition_key: str | None = None
    code_version: str | None = None
    job_name: str | None = None
    publish: str | None = Field(default=None, description="Asset outputs: output or run.")


class OpOutputCommitQuery(BaseModel):
    """Where an op's output goes (the request's body is its bytes)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str
    tag: str
    node: str
    media_type: str
    job_name: str | None = None


class InputQuery(BaseModel):
    """Which asset value a step reads (``AssetService.locate_input``; without a run: the
    value on the tag now)."""

    model_config = ConfigDict(extra="forbid")
    run_id: str | None = None
    tag: str
    node: str
    partition_key: str | None = None
    pin_tag: str | None = None
    pin_version: str | None = None
    producer: str | None = None


class OpOutputQuery(BaseModel):
    """Which op output a step reads: ``node`` of run ``producer``."""

    model_config = ConfigDict(extra="forbid")
    run_id: str | None = None
    tag: str
    producer: str
    node: str


class NodeValueOut(BaseModel):
    node: str
    partition_key: str | None
    cas_id: str
    media_type: str
    size: int

    @classmethod
    def of(cls, value: core.NodeValue) -> "NodeValueOut":
        return cls.model_validate(value, from_attributes=True)


class OutputCommitOut(BaseModel):
    value: NodeValueOut
    tag: str
    artifact_id: uuid.UUID
    version_hash: str
    from_target_id: uuid.UUID | None
    from_version_hash: str | None
    revision: int
    changed: bool = Field(description="False: the value was the node's already.")

    @classmethod
    def of(cls, commit: core.OutputCommit) -> "OutputCommitOut":
        return cls.model_validate(commit, from_attributes=True)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="A ref: tag, tag@{n}, run:<run id>, version hash or id.")
    expected_target_id: uuid.UUID | None = Field(
        default=None, description="Merge only if the tag points at this artifact now."
    )
    reason: str | None = None
    moved_by: str | None = None
    dry_run: bool = Field(default=False, description="Only say what would merge.")


class MergeOut(BaseModel):
    tag: str
    source: str
    dry_run: bool
    from_target_id: uuid.UUID | None
    to_target_id: uuid.UUID | None = Field(description="Null on a dry run.")
    revision: int | None = Field(description="The tag's revision after it; null on a dry run.")
    fast_forward: bool
    changed: bool = Field(description="Whether the tag moved (on a dry run: would move).")
    changed_nodes: list[str]


class MoveTagIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field(description="A ref: tag, tag@{n}, version hash (prefix) or artifact id.")
    reason: str | None = None
    moved_by: str | None = None


class TagOut(BaseModel):
    name: str
    target_id: uuid.UUID
    target_kind: str
    revision: int
    created_at: datetime
    updated_at: datetime
    updated_by: str | None

    @classmethod
    def of(cls, tag: core.Tag) -> "TagOut":
        return cls.model_validate(tag, from_attributes=True)


class TagMoveOut(BaseModel):
    id: int
    tag_name: str
    from_target_id: uuid.UUID | None
    to_target_id: uuid.UUID | None
    revision: int
    moved_at: datetime
    moved_by: str | None
    reason: str | None
    run_id: str | None

    @classmethod
    def of(cls, move: core.TagMove) -> "TagMoveOut":
        return cls.model_validate(move, from_attributes=True)


class TagPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    immutable: StrictBool = Field(
        default=False, description="Created once, never moved or deleted."
    )
    protected: StrictBool = Field(default=False, description="Moved only by publish or merge.")
    moved_by: str | None = Field(default=None, description="Who sets it (policy history).")


class TagPolicyOut(BaseModel):
    pattern: str = Field(description="A glob over tag names: *, ?, [...].")
    immutable: bool
    protected: bool
    updated_at: datetime
    updated_by: str | None

    @classmethod
    def of(cls, policy: core.TagPolicy) -> "TagPolicyOut":
        return cls.model_validate(policy, from_attributes=True)


class TagPolicyChangeOut(BaseModel):
    id: int
    pattern: str
    old_immutable: bool | None = Field(description="Null: no policy before this change.")
    old_protected: bool | None
    new_immutable: bool | None = Field(description="Null: the policy was deleted.")
    new_protected: bool | None
    changed_at: datetime
    changed_by: str | None

    @classmethod
    def of(cls, change: core.TagPolicyChange) -> "TagPolicyChangeOut":
        return cls.model_validate(change, from_attributes=True)


class ArtifactOut(BaseModel):
    id: uuid.UUID
    kind: str
    version_hash: str
    cas_id: str
    parent_id: uuid.UUID | None
    name: str
    created_at: datetime
    created_by: str | None
    metadata: dict[str, Any]

    @classmethod
    def of(cls, artifact: core.Artifact) -> "ArtifactOut":
        return cls.model_validate(artifact, from_attributes=True)


class BlobUseOut(BaseModel):
    run_id: str
    direction: core.Direction
    node: str
    partition_key: str | None = Field(description="The partition; null: the node's own value.")
    recorded_at: datetime = Field(description="When the run recorded the value.")
    tag: str = Field(description="The run's tag.")
    job_name: str | None
    status: str = Field(description="The run's status: started, success, failure, canceled.")
    publish: core.PublishMode

    @classmethod
    def of(cls, use: core.BlobUse) -> "BlobUseOut":
        return cls.model_validate(use, from_attributes=True)


class BlobOut(BaseModel):
    cas_id: str
    size: int
    media_type: str
    created_at: datetime


class BlobLineageOut(BaseModel):
    blob: BlobOut
    produced_by: list[BlobUseOut] = Field(description="Runs that produced it, oldest first.")
    read_by: list[BlobUseOut] = Field(description="Runs that read it, oldest first.")

    @classmethod
    def of(cls, lineage: core.BlobLineage) -> "BlobLineageOut":
        return cls(
            blob=BlobOut.model_validate(lineage.blob, from_attributes=True),
            produced_by=[BlobUseOut.of(use) for use in lineage.produced_by],
            read_by=[BlobUseOut.of(use) for use in lineage.read_by],
        )


class BlameEntryOut(BaseModel):
    node: str
    partition_key: str | None = Field(description="The partition; null: the node's own value.")
    cas_id: str
    media_type: str | None
    size: int | None
    since: ArtifactOut = Field(
        description="The oldest version on the ref's first-parent line from which this "
        "value held these bytes without a break."
    )
    produced_by: BlobUseOut | None = Field(
        description="The earliest run that produced these bytes for this node and "
        "partition; null: no run did (written by hand)."
    )


class BlameOut(BaseModel):
    ref: str
    version: ArtifactOut = Field(description="The version the ref names.")
    entries: list[BlameEntryOut] = Field(description="Each node and partition value.")

    @classmethod
    def of(cls, blame: core.Blame) -> "BlameOut":
        return cls(
            ref=blame.ref,
            version=ArtifactOut.of(blame.version),
            entries=[
                BlameEntryOut(
                    node=entry.node,
                    partition_key=entry.partition_key,
                    cas_id=entry.cas_id,
                    media_type=entry.media_type,
                    size=entry.size,
                    since=ArtifactOut.of(entry.since),
                    produced_by=None
                    if entry.produced_by is None
                    else BlobUseOut.of(entry.produced_by),
                )
                for entry in blame.entries
            ],
        )


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "A tag policy refused the move; nothing changed"},
    404: {"model": ErrorBody, "description": "Not found"},
    409: {"model": ErrorBody, "description": "Conflict: a compare-and-swap lost"},
    422: {"model": ErrorBody, "description": "Validation error"},
    500: {"model": ErrorBody, "description": "Integrity failure or internal error"},
    503: {"model": ErrorBody, "description": "Catalog busy; retry after Retry-After seconds"},
}
