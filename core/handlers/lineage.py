"""HTTP handlers for lineage: a version's blame and a blob's runs."""

import core
from core.handlers.schemas import BlameOut, BlobLineageOut


class LineageHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def blame(self, ref: str) -> BlameOut:
        return BlameOut.of(self._catalog.lineage.blame(ref))

    def of_blob(self, cas_id: str, limit: int) -> BlobLineageOut:
        return BlobLineageOut.of(self._catalog.lineage.of_blob(cas_id, limit=limit))
