"""HTTP handlers for artifacts: one artifact (by ref) and its patch chain."""

import core
from core.handlers.schemas import ArtifactOut


class ArtifactHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def get(self, ref: str) -> ArtifactOut:
        return ArtifactOut.of(self._catalog.refs.resolve(ref))

    def chain(self, ref: str) -> list[ArtifactOut]:
        head = self._catalog.refs.resolve(ref)
        return [ArtifactOut.of(a) for a in self._catalog.artifacts.get_patch_chain(head.id)]
