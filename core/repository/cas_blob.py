"""SQL for the catalog entries of content-addressed blobs."""

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.domain import Blob
from core.models import CasBlob
from core.repository.clock import aware, utc_now

blobs = CasBlob.__table__


class CasBlobRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def add(self, cas_id: str, size: int, media_type: str) -> None:
        """Record a blob; a blob already recorded keeps its first entry."""
        self._session.execute(
            insert(blobs)
            .values(cas_id=cas_id, size=size, media_type=media_type, created_at=utc_now())
            .on_conflict_do_nothing(index_elements=[blobs.c.cas_id])
        )

    def get(self, cas_id: str) -> Blob | None:
        row = self._session.execute(select(blobs).where(blobs.c.cas_id == cas_id)).first()
        if row is None:
            return None
        return Blob(row.cas_id, row.size, row.media_type, aware(row.created_at))
