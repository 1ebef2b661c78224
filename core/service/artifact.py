"""The artifact catalog: immutable DAG versions, patch sets and run snapshots.

``ArtifactService`` is the public face of two concerns: creating artifacts
(``core.service.artifact_creation``) and finding and resolving them
(``core.service.artifact_resolution``).
"""

from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_creation import ArtifactCreation, version_hash
from core.service.artifact_resolution import ArtifactResolution
from core.service.cas import CasService
from core.storage.uow import UnitOfWorkFactory

__all__ = ["ArtifactService", "version_hash"]

RESOLVED_CACHE_SIZE = 256
"""Resolved DAG documents kept per process (artifacts are immutable)."""
ARTIFACT_CACHE_SIZE = 4096


class ArtifactService:
    """Creates artifacts idempotently and resolves them to DAG documents."""

    def __init__(self, creation: ArtifactCreation, resolution: ArtifactResolution) -> None:
        self.creation = creation
        self.resolution = resolution
        self.create_dag_version = creation.create_dag_version
        self.add_dag_version = creation.add_dag_version
        self.create_patch_set = creation.create_patch_set
        self.add_patch_set = creation.add_patch_set
        self.create_run_snapshot = creation.create_run_snapshot
        self.add_run_snapshot = creation.add_run_snapshot
        self.get_by_id = resolution.get_by_id
        self.get_by_version_hash = resolution.get_by_version_hash
        self.get_patch_chain = resolution.get_patch_chain
        self.get_ancestry = resolution.get_ancestry
        self.resolve = resolution.resolve
        self.patch_depth = resolution.patch_depth

    @classmethod
    def compose(cls, uow: UnitOfWorkFactory[UnitOfWork], cas: CasService) -> "ArtifactService":
        """Both concerns over one unit-of-work factory, sharing one cache."""
        resolution = ArtifactResolution(
            uow,
            cas,
            resolved_cache_size=RESOLVED_CACHE_SIZE,
            artifact_cache_size=ARTIFACT_CACHE_SIZE,
        )
        return cls(ArtifactCreation(uow, cas, resolution), resolution)
