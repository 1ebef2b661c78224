"""SQL for run records."""

import hashlib
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, bindparam, func, select
from sqlalchemy.orm import Session

from core.domain import (
    Artifact,
    Direction,
    NodeValue,
    OutcomeState,
    PublishMode,
    Run,
    RunIO,
    RunOutcome,
    RunStatus,
)
from core.repository.artifact import (
    artifacts,
    join_target_skips,
    labelled_artifact,
    labelled_columns,
    remember_skip_nodes,
)
from core.repository.clock import aware, aware_or_none, stored, utc_now
from core.repository.errors import conflicts_on_integrity_errors, missing_rows_not_found
from core.storage.duckdb.inserts import insert_if_absent, upsert
from core.storage.models import RunIORow, RunPinRow, RunRow

runs = RunRow.__table__
run_io = RunIORow.__table__
pins = RunPinRow.__table__
IO_KEY = tuple(column.name for column in run_io.primary_key)


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
        publish=PublishMode(row.publish or PublishMode.OUTPUT),
        head_id=row.head_id,
        outcome=None if row.outcome is None else _to_outcome(json.loads(row.outcome)),
    )


def _to_outcome(value: dict[str, Any]) -> RunOutcome:
    target = value.get("to_target_id")
    return RunOutcome(
        state=OutcomeState(value["state"]),
        revision=value.get("revision"),
        to_target_id=None if target is None else uuid.UUID(target),
        checks=tuple(value.get("checks", ())),
        conflicts=tuple((node, key) for node, key in value.get("conflicts", ())),
    )


def _outcome_json(outcome: RunOutcome) -> str:
    return json.dumps(
        {
            "state": outcome.state.value,
            "revision": outcome.revision,
            "to_target_id": outcome.to_target_id and str(outcome.to_target_id),
            "checks": list(outcome.checks),
            "conflicts": [list(conflict) for conflict in outcome.conflicts],
        },
        sort_keys=True,
    )


class RunRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def get(self, run_id: str, *, lock: bool = False) -> Run | None:
        """The run; with ``lock`` (Postgres) its row is held until this transaction ends,
        so that two publishes of one run take turns and the second reads the first's
        outcome (``FOR NO KEY UPDATE``: commits that name the run still go on)."""
        locks = lock and self._session.get_bind().dialect.name == "postgresql"
        row = self._session.execute(_GET_LOCKED if locks else _GET, {"run_id": run_id}).first()
        return None if row is None else _to_run(row)

    def get_with_head(self, run_id: str) -> tuple[Run, Artifact | None] | None:
        """The run and the artifact its staged head points at (``None``: at its base),
        in one statement."""
        row = self._session.execute(_GET_WITH_HEAD, {"run_id": run_id}).first()
        return None if row is None else (_to_run(row), labelled_artifact(row, "staged_"))

    def find_by_prefix(self, prefix: str, limit: int) -> list[Run]:
        """Runs whose id starts with ``prefix`` (at most ``limit``)."""
        rows = self._session.execute(
            select(runs)
            .where(runs.c.run_id.startswith(prefix, autoescape=True))
            .order_by(runs.c.run_id)
            .limit(limit)
        ).all()
        return [_to_run(row) for row in rows]

    def pinned(self, run_id: str, ref: str) -> uuid.UUID | None:
        """The version run ``run_id`` resolved ``ref`` to when it first read through it."""
        return self._session.scalar(
            select(pins.c.artifact_id).where(pins.c.run_id == run_id, pins.c.ref == ref)
        )

    @conflicts_on_integrity_errors
    def pin_ref(self, run_id: str, ref: str, artifact_id: uuid.UUID) -> uuid.UUID:
        """Record that run ``run_id`` reads ``ref`` as ``artifact_id``, unless it has a pin
        for ``ref`` already; the pin that holds."""
        values = {"run_id": run_id, "ref": ref, "artifact_id": artifact_id, "pinned_at": utc_now()}
        if insert_if_absent(self._session, pins, values, ("run_id", "ref"), ("artifact_id",)):
            return artifact_id
        pinned = self.pinned(run_id, ref)
        assert pinned is not None, "a pin that was not inserted is there"
        return pinned

    def recent(self, limit: int) -> list[Run]:
        """The latest runs, newest first."""
        rows = self._session.execute(
            select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id).limit(limit)
        ).all()
        return [_to_run(row) for row in rows]

    @conflicts_on_integrity_errors
    def insert(
        self,
        run_id: str,
        *,
        snapshot_id: uuid.UUID,
        base_id: uuid.UUID | None,
        tag: str,
        job_name: str | None,
        status: str,
        publish: PublishMode = PublishMode.OUTPUT,
        head_id: uuid.UUID | None = None,
    ) -> Run | None:
        """Record a run (its staged head at ``head_id``: ``None`` for its base); ``None``
        if a run with this id exists already."""
        values = {
            "run_id": run_id,
            "snapshot_id": snapshot_id,
            "base_id": base_id,
            "tag": tag,
            "job_name": job_name,
            "status": status,
            "started_at": utc_now(),
            "finished_at": None,
            "publish": publish.value,
            "head_id": head_id,
            "head_revision": 0,
            "outcome": None,
        }
        row = insert_if_absent(
            self._session, runs, values, ("run_id",), returning=tuple(runs.c.keys())
        )
        return None if row is None else _to_run(row)

    def lock(self, run_id: str) -> None:
        """Hold ``run_id`` until this transaction ends, so that concurrent first touches of
        one run take turns (Postgres; on DuckDB one process at a time holds the file)."""
        if self._session.get_bind().dialect.name != "postgresql":
            return
        key = int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:8], "big", signed=True)
        self._session.execute(select(func.pg_advisory_xact_lock(key)))

    def finish(self, run_id: str, status: str, finished_at: datetime | None) -> Run | None:
        """Record ``status`` as the final one of the run if it is still started, finished
        at ``finished_at`` (default: now); ``None`` if it is not (a concurrent caller
        finished it first)."""
        row = self._session.execute(
            runs.update()
            .where(runs.c.run_id == run_id, runs.c.status == RunStatus.STARTED.value)
            .values(status=status, finished_at=stored(finished_at) if finished_at else utc_now())
            .returning(*runs.c)
        ).first()
        return None if row is None else _to_run(row)

    def staged_head(self, run_id: str) -> tuple[uuid.UUID | None, int] | None:
        """Where ``run_id``'s staged head is (its base until it moves) and how many times
        it moved; ``None``: no such run. The head's skip-list nodes are read with it, for
        a version added on it."""
        row = self._session.execute(_STAGED_HEAD, {"run_id": run_id}).first()
        if row is None:
            return None
        remember_skip_nodes(self._session, row.target_id, row)
        return row.target_id, int(row.head_revision)

    def move_head(
        self, run_id: str, *, expected_revision: int, new_head_id: uuid.UUID
    ) -> int | None:
        """Move ``run_id``'s staged head to ``new_head_id`` if it has moved
        ``expected_revision`` times; the new count, or ``None`` when the move lost."""
        row = self._session.execute(
            runs.update()
            .where(runs.c.run_id == run_id, runs.c.head_revision == expected_revision)
            .values(head_id=new_head_id, head_revision=expected_revision + 1)
            .returning(runs.c.head_revision)
        ).first()
        return None if row is None else int(row.head_revision)

    def get_many(self, run_ids: Sequence[str]) -> dict[str, Run]:
        """The runs among ``run_ids`` that exist, by id."""
        if not run_ids:
            return {}
        rows = self._session.execute(select(runs).where(runs.c.run_id.in_(set(run_ids)))).all()
        return {row.run_id: _to_run(row) for row in rows}

    def record_outcome(self, run_id: str, outcome: RunOutcome) -> None:
        """Record how publishing ``run_id`` ended (the latest word wins)."""
        self.record_outcomes([(run_id, outcome)])

    def record_outcomes(self, outcomes: Sequence[tuple[str, RunOutcome]]) -> None:
        """``record_outcome`` for each (run id, outcome), in one round trip."""
        self._session.connection().execute(
            _RECORD_OUTCOME,
            [
                {"key_run_id": run_id, "outcome": _outcome_json(outcome)}
                for run_id, outcome in outcomes
            ],
        )


_GET = select(runs).where(runs.c.run_id == bindparam("run_id", type_=runs.c.run_id.type))
"""``RunRepository.get``'s query, built once (building it costs more than running it)."""
_GET_LOCKED = _GET.with_for_update(key_share=True)


def _staged_head_query() -> Select[Any]:
    """``RunRepository.staged_head``'s statement, built once: the run's staged head (its
    base until it moves), how often it moved, and the head's skip-list nodes."""
    head = func.coalesce(runs.c.head_id, runs.c.base_id)
    joined, skips = join_target_skips(runs, head)
    return (
        select(head.label("target_id"), runs.c.head_revision, *skips)
        .select_from(joined)
        .where(runs.c.run_id == bindparam("run_id", type_=runs.c.run_id.type))
    )


_STAGED_HEAD = _staged_head_query()
_RECORD_OUTCOME = (
    runs.update()
    .where(runs.c.run_id == bindparam("key_run_id", type_=runs.c.run_id.type))
    .values(outcome=bindparam("outcome", type_=runs.c.outcome.type))
)
_GET_WITH_HEAD = (
    select(runs, *labelled_columns(artifacts, "staged_"))
    .outerjoin(artifacts, artifacts.c.id == runs.c.head_id)
    .where(runs.c.run_id == bindparam("run_id", type_=runs.c.run_id.type))
)


def _to_io(row: Row[Any]) -> RunIO:
    return RunIO(
        run_id=row.run_id,
        direction=Direction(row.direction),
        node=row.node,
        partition_key=row.partition_key or None,
        cas_id=row.cas_id,
        media_type=row.media_type,
        size=row.size,
        recorded_at=aware(row.recorded_at),
    )


class RunIORepository:
    """Lineage rows; a run records at most one value per direction, node and partition."""

    def __init__(self, session: Session) -> None:
        self._session = session

    @missing_rows_not_found
    def record(
        self,
        run_id: str,
        entries: Sequence[tuple[Direction, NodeValue]],
        recorded_at: datetime | None = None,
    ) -> None:
        """Record each (direction, value) of ``run_id`` at ``recorded_at`` (default: now);
        the last entry for a direction, node and partition wins, here and over earlier
        records (see ``upsert`` for the statements this takes)."""
        recorded_at = recorded_at or utc_now()
        rows = [
            {
                "run_id": run_id,
                "direction": direction.value,
                "node": value.node,
                "partition_key": value.partition_key or "",
                "cas_id": value.cas_id,
                "media_type": value.media_type,
                "size": value.size,
                "recorded_at": recorded_at,
            }
            for direction, value in entries
        ]
        upsert(self._session, run_io, IO_KEY, rows)

    def get(
        self, run_id: str, direction: Direction, node: str, partition_key: str | None
    ) -> RunIO | None:
        row = self._session.execute(
            select(run_io).where(
                run_io.c.run_id == run_id,
                run_io.c.direction == direction.value,
                run_io.c.node == node,
                run_io.c.partition_key == (partition_key or ""),
            )
        ).first()
        return None if row is None else _to_io(row)

    def for_run(self, run_id: str) -> list[RunIO]:
        rows = self._session.execute(
            select(run_io)
            .where(run_io.c.run_id == run_id)
            .order_by(run_io.c.direction, run_io.c.node, run_io.c.partition_key)
        ).all()
        return [_to_io(row) for row in rows]

    def first_output(self, node: str, partition_key: str | None, cas_id: str) -> RunIO | None:
        """The earliest output of ``cas_id`` recorded for ``node`` (and partition), through
        the index on ``run_io(cas_id)``."""
        row = self._session.execute(
            select(run_io)
            .where(
                run_io.c.cas_id == cas_id,
                run_io.c.direction == Direction.OUTPUT.value,
                run_io.c.node == node,
                run_io.c.partition_key == (partition_key or ""),
            )
            .order_by(run_io.c.recorded_at, run_io.c.run_id)
            .limit(1)
        ).first()
        return None if row is None else _to_io(row)

    def of_blob(self, cas_id: str, direction: Direction, limit: int) -> list[RunIO]:
        """The first ``limit`` records of ``cas_id`` in ``direction``, oldest first, through
        the index on ``run_io(cas_id)``."""
        rows = self._session.execute(
            select(run_io)
            .where(run_io.c.cas_id == cas_id, run_io.c.direction == direction.value)
            .order_by(run_io.c.recorded_at, run_io.c.run_id, run_io.c.node, run_io.c.partition_key)
            .limit(limit)
        ).all()
        return [_to_io(row) for row in rows]
