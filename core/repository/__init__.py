"""Repositories: SQL only, no decisions. They flush; the unit of work commits."""

from core.repository.artifact import ArtifactRepository
from core.repository.cas_blob import CasBlobRepository
from core.repository.run import RunIORepository, RunRepository
from core.repository.tag import TagRepository

__all__ = [
    "ArtifactRepository",
    "CasBlobRepository",
    "RunIORepository",
    "RunRepository",
    "TagRepository",
]
