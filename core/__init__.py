"""A versioned DAG catalog: content-addressed blobs, immutable versions, movable tags.

>>> import core
>>> with core.connect() as catalog:                      # doctest: +SKIP
...     catalog.workflows.create_workflow(core.CreateWorkflowRequest("etl", dag))
"""

from core.bootstrap import Services, connect
from core.domain import (
    Artifact,
    ArtifactKind,
    Blob,
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
    WorkflowMove,
)
from core.errors import (
    ConflictError,
    IntegrityError,
    MergeConflictError,
    NotFoundError,
    OrchestratorError,
    StorageBusyError,
    StorageUnavailableError,
    TransactionLostError,
    ValidationError,
)

__all__ = [
    "Artifact",
    "ArtifactKind",
    "Blob",
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
    "TransactionLostError",
    "ValidationError",
    "WorkflowMove",
    "connect",
]
