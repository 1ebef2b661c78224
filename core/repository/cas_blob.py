"""SQL for the catalog entries of content-addressed blobs."""

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, exists, or_, select
from sqlalchemy.orm import Session

from core.domain import Blob
from core.repository.clock import aware, utc_now
from core.repository.errors import conflicts_on_integrity_errors
from core.storage.duckdb.inserts import insert_rows_if_absent
from core.storage.models import ArtifactRow, BlobRefRow, CasBlob, RunIORow

blobs = CasBlob.__table__
artifacts = ArtifactRow.__table__
blob_refs = BlobRefRow.__table__
run_io = RunIORow.__table__


def _referenced(cas_id_column: ColumnElement[str]) -> ColumnElement[bool]:
    return or_(
        exists().where(artifacts.c.cas_id == cas_id_column),
        exists().where(blob_refs.c.cas_id == cas_id_column),
        exists().where(run_io.c.cas_id == cas_id_column),
    )


def _to_blob(row: Row[Any]) -> Blob:
    return Blob(row.cas_id, row.size, row.media_type, aware(row.created_at))


class CasBlobRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        # entries this transaction wrote (or found) exist until it ends: no need to look
        self._recorded: set[str] = session.info.setdefault("recorded_blobs", set())

    def add(
        self, entries: Sequence[tuple[str, int, str]], created_at: datetime | None = None
    ) -> None:
        """Record blobs given as (cas id, size, media type), in one statement, at
        ``created_at`` (default: now); a blob already recorded keeps its first entry."""
        now = created_at or utc_now()
        rows: list[dict[str, Any]] = [
            {"cas_id": cas_id, "size": size, "media_type": media_type, "created_at": now}
            for cas_id, size, media_type in entries
            if cas_id not in self._recorded
        ]
        insert_rows_if_absent(self._session, blobs, rows, ("cas_id",))
        self.recorded(row["cas_id"] for row in rows)

    def unrecorded(self, cas_ids: Iterable[str]) -> list[str]:
        """Those of ``cas_ids`` this transaction has not recorded or found yet."""
        return [cas_id for cas_id in cas_ids if cas_id not in self._recorded]

    def recorded(self, cas_ids: Iterable[str]) -> None:
        """Remember blobs recorded in this transaction (their entries exist until it ends)."""
        self._recorded.update(cas_ids)

    def missing(self, cas_ids: frozenset[str]) -> frozenset[str]:
        """Those of ``cas_ids`` that have no catalog entry."""
        unknown = cas_ids - self._recorded
        if not unknown:
            return frozenset()
        found = self._session.scalars(select(blobs.c.cas_id).where(blobs.c.cas_id.in_(unknown)))
        return unknown - set(found)

    def get(self, cas_id: str) -> Blob | None:
        row = self._session.execute(select(blobs).where(blobs.c.cas_id == cas_id)).first()
        return None if row is None else _to_blob(row)

    def unreferenced(self) -> list[Blob]:
        """Blobs that no artifact or run references."""
        rows = self._session.execute(
            select(blobs).where(~_referenced(blobs.c.cas_id)).order_by(blobs.c.cas_id)
        ).all()
        return [_to_blob(row) for row in rows]

    @conflicts_on_integrity_errors
    def delete_if_unreferenced(self, cas_id: str) -> bool:
        """Delete the entry of ``cas_id`` unless something references it now.

        ``ConflictError`` when a concurrent commit made it referenced (a foreign key held).
        """
        deleted = self._session.execute(
            blobs.delete()
            .where(blobs.c.cas_id == cas_id, ~_referenced(blobs.c.cas_id))
            .returning(blobs.c.cas_id)
        ).first()
        self._recorded.discard(cas_id)
        return deleted is not None

    def referenced(self) -> Iterator[Blob]:
        """Every blob an artifact or run references, in cas id order."""
        rows = self._session.execute(
            select(blobs).where(_referenced(blobs.c.cas_id)).order_by(blobs.c.cas_id)
        )
        return (_to_blob(row) for row in rows.all())

    def known(self, cas_ids: list[str]) -> set[str]:
        """Those of ``cas_ids`` that have a catalog entry."""
        found: set[str] = set()
        for start in range(0, len(cas_ids), 500):
            batch = cas_ids[start : start + 500]
            found.update(
                self._session.scalars(select(blobs.c.cas_id).where(blobs.c.cas_id.in_(batch)))
            )
        return found
