"""A versioned DAG catalog: content-addressed blobs, immutable versions, movable tags.

>>> import core
>>> with core.connect() as catalog:                      # doctest: +SKIP
...     catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", dag))
"""

from typing import TYPE_CHECKING, Any

from core.domain import (
    Artifact,
    ArtifactKind,
    Blame,
    BlameEntry,
    Blob,
    BlobLineage,
    BlobUse,
    CreateWorkflowRequest,
    CreateWorkflowResponse,
    Direction,
    MergeResult,
    MovesPage,
    NodeValue,
    OutcomeState,
    OutputCommit,
    Publication,
    PublishMode,
    Run,
    RunIO,
    RunOutcome,
    RunStatus,
    Tag,
    TagMove,
    TagPolicy,
    TagPolicyChange,
    WorkflowMove,
)
from core.errors import (
    ConflictError,
    IntegrityError,
    MergeConflictError,
    NotFoundError,
    OrchestratorError,
    PolicyError,
    StorageBusyError,
    StorageUnavailableError,
    TransactionLostError,
    ValidationError,
)

__all__ = [
    "Artifact",
    "ArtifactKind",
    "Blame",
    "BlameEntry",
    "Blob",
    "BlobLineage",
    "BlobUse",
    "ConflictError",
    "CreateWorkflowRequest",
    "CreateWorkflowResponse",
    "Direction",
    "IntegrityError",
    "MergeConflictError",
    "MergeResult",
    "MovesPage",
    "NodeValue",
    "NotFoundError",
    "OrchestratorError",
    "OutcomeState",
    "OutputCommit",
    "PolicyError",
    "Publication",
    "PublishMode",
    "Run",
    "RunIO",
    "RunOutcome",
    "RunStatus",
    "Services",
    "StorageBusyError",
    "StorageUnavailableError",
    "Tag",
    "TagMove",
    "TagPolicy",
    "TagPolicyChange",
    "TransactionLostError",
    "ValidationError",
    "WorkflowMove",
    "connect",
]

if TYPE_CHECKING:
    from core.bootstrap import Services, connect


def __getattr__(name: str) -> Any:
    """``connect`` and ``Services`` load the storage and the services on first use, so a
    process that only names the domain (a step talking to a served catalog) never does."""
    if name in ("Services", "connect"):
        from core import bootstrap

        return getattr(bootstrap, name)
    raise AttributeError(f"module 'core' has no attribute {name!r}")
