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
    MovesPage,
    NodeValue,
    OutputCommit,
    Run,
    RunIO,
    RunStatus,
    Tag,
    TagMove,
    WorkflowMove,
)
from core.errors import (
    ConflictError,
    IntegrityError,
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
    "MovesPage",
    "NodeValue",
    "NotFoundError",
    "OrchestratorError",
    "OutputCommit",
    "Run",
    "RunIO",
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
