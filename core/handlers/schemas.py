"""Request and response bodies of the HTTP API (they are its OpenAPI contract)."""

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

import core
from core.identifiers import check_revision

Revision = Annotated[int, BeforeValidator(check_revision)]
"""A tag revision as the core takes it, checked on the raw JSON value: ``true``,
``1.0`` and ``"1"`` are a 422 naming the field, never revision 1."""


class ErrorDetail(BaseModel):
    type: str = Field(description="not_found, conflict, validation, busy, integrity or internal.")
    message: str
    field: str | None = Field(default=None, description="The offending field, if any.")
    value: Any = Field(default=None, description="The offending value, if any.")
    current_target: str | None = Field(default=None, description="On conflict: the target now.")
    current_revision: int | None = Field(default=None, description="On conflict: the revision.")


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


class FinishRunIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: str = Field(description="success, failure or canceled.")


class RunOut(BaseModel):
    run_id: str
    snapshot_id: uuid.UUID
    base_id: uuid.UUID | None
    tag: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    job_name: str | None

    @classmethod
    def of(cls, run: core.Run) -> "RunOut":
        return cls.model_validate(run, from_attributes=True)


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


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Not found"},
    409: {"model": ErrorBody, "description": "Conflict: a compare-and-swap lost"},
    422: {"model": ErrorBody, "description": "Validation error"},
    500: {"model": ErrorBody, "description": "Integrity failure or internal error"},
    503: {"model": ErrorBody, "description": "Catalog busy; retry after Retry-After seconds"},
}
