"""SQL for run records."""

import uuid
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.domain import Run
from core.models import RunRow
from core.repository.clock import aware, aware_or_none, utc_now

runs = RunRow.__table__


def _to_run(row: Row[Any]) -> Run:
    return Run(
        run_id=row.run_id,
        snapshot_id=row.snapshot_id,
        base_id=row.base_id,
        tag=row.tag,
        status=row.status,
        started_at=aware(row.started_at),
        finished_at=aware_or_none(row.finished_at),
        job_name=row.job_name,
    )


class RunRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, run_id: str) -> Run | None:
        row = self._session.execute(select(runs).where(runs.c.run_id == run_id)).first()
        return None if row is None else _to_run(row)

    def insert(
        self,
        run_id: str,
        *,
        snapshot_id: uuid.UUID,
        base_id: uuid.UUID | None,
        tag: str,
        job_name: str | None,
        status: str,
    ) -> Run | None:
        """Record a run; ``None`` if a run with this id exists already."""
        row = self._session.execute(
            insert(runs)
            .values(
                run_id=run_id,
                snapshot_id=snapshot_id,
                base_id=base_id,
                tag=tag,
                job_name=job_name,
                status=status,
                started_at=utc_now(),
                finished_at=None,
            )
            .on_conflict_do_nothing(index_elements=[runs.c.run_id])
            .returning(*runs.c)
        ).first()
        return None if row is None else _to_run(row)

    def set_status(self, run_id: str, status: str, *, finished: bool) -> Run | None:
        row = self._session.execute(
            runs.update()
            .where(runs.c.run_id == run_id)
            .values(status=status, finished_at=utc_now() if finished else None)
            .returning(*runs.c)
        ).first()
        return None if row is None else _to_run(row)
