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
    Run,
    RunStatus,
    Tag,
    TagMove,
)
from core.errors import (
    ConflictError,
    IntegrityError,
    NotFoundError,
    OrchestratorError,
    StorageBusyError,
    ValidationError,
)

__all__ = [
    "Artifact",
    "ArtifactKind",
    "Blob",
    "ConflictError",
    "CreateWorkflowRequest",
    "CreateWorkflowResponse",
    "IntegrityError",
    "NotFoundError",
    "OrchestratorError",
    "Run",
    "RunStatus",
    "Services",
    "StorageBusyError",
    "Tag",
    "TagMove",
    "ValidationError",
    "connect",
]
