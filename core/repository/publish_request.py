"""SQL for publishes waiting on their tag's lock (Postgres): the group commit of
``core.service.publish_queue``.

A publisher records what it asks, then holds an advisory lock of its own (its
``wait_key``) while it waits for the tag's turn: an advisory lock of its connection, taken
outside a transaction, held across the transactions of its publish and given up after.
Whoever holds the turn lands the waiting requests whose publisher still holds its own
lock (alive and waiting), and writes each move into its request; the publisher, once the
holder is done, finds its move there. A publisher that died no longer holds its advisory
locks (they go with its connection), so nothing lands for it and its turn is free.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    false,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.orm import Session

from core.domain import Artifact, PublishMode
from core.repository.artifact import artifacts, labelled_artifact, labelled_columns
from core.repository.clock import stored, utc_now
from core.storage.models import PublishRequestRow, RunRow

requests = PublishRequestRow.__table__
runs = RunRow.__table__

WAIT_LOCK_CLASS = 0x7075626C
"""The first key of every publisher's advisory lock (the second is its ``wait_key``)."""
TURN_LOCK_CLASS = 0x7475726E
"""The first key of each tag's turn (the second is a hash of the catalog's schema and the
tag's name: advisory locks are the database's, shared by every schema in it)."""


@dataclass(frozen=True)
class PublishRequest:
    """A publish of ``run_id`` asked by the call ``token``: the run's staged head
    ``source_id`` over ``base_id``, and what it changed (``changes``, JSON)."""

    run_id: str
    token: uuid.UUID
    wait_key: int
    tag: str
    base_id: uuid.UUID | None
    source_id: uuid.UUID
    moved_by: str | None
    reason: str | None
    changes: str


@dataclass(frozen=True)
class LandedMove:
    """The move that landed a request: the tag from ``from_target_id`` to
    ``to_target_id``, its revision after, and whether it was a fast-forward."""

    from_target_id: uuid.UUID | None
    to_target_id: uuid.UUID
    revision: int
    fast_forward: bool


class PublishRequestRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

    def ask(self, request: PublishRequest) -> None:
        """Record ``request``, in place of any earlier one for its run (that call then
        finds its token gone, and publishes on its own)."""
        self._session.execute(
            _ASK,
            {
                "run_id": request.run_id,
                "token": request.token,
                "wait_key": request.wait_key,
                "tag": request.tag,
                "base_id": request.base_id,
                "source_id": request.source_id,
                "moved_by": request.moved_by,
                "reason": request.reason,
                "changes": request.changes,
                "requested_at": utc_now(),
            },
        )

    def wait_or_take_turn(self, tag: str, wait_key: int) -> bool:
        """Outside a transaction (each statement committed on its own): show this
        publisher waiting (its advisory lock ``wait_key``) while it takes ``tag``'s turn
        if nobody holds it (``True``: held by this connection until ``give_turn``), else
        waits until its holder gives it up (``False``)."""
        return bool(self._session.scalar(_WAIT_OR_TAKE_TURN, {"tag": tag, "wait_key": wait_key}))

    def queue_for_turn(self, tag: str, wait_key: int) -> None:
        """``wait_or_take_turn`` that waits in line to take the turn."""
        self._session.execute(_QUEUE_FOR_TURN, {"tag": tag, "wait_key": wait_key})

    def give_turn(self, tag: str) -> None:
        """Give up ``tag``'s turn, held by this connection."""
        self._session.execute(_GIVE_TURN, {"tag": tag})

    def take_landed(self, run_id: str, token: uuid.UUID) -> LandedMove | None:
        """The move that landed the request ``token`` of ``run_id``, if one did (the
        request is then deleted)."""
        row = self._session.execute(_TAKE_LANDED, {"key_run_id": run_id, "key_token": token})
        return _landed_move(row.first())

    def withdraw(self, run_id: str, token: uuid.UUID) -> LandedMove | None:
        """Delete the request ``token`` of ``run_id`` (gone already if another call asked
        in its place): the move that landed it, if one did."""
        row = self._session.execute(_WITHDRAW, {"key_run_id": run_id, "key_token": token})
        return _landed_move(row.first())

    def waiting(
        self, tag: str, limit: int, passed: Sequence[str] = ()
    ) -> list[tuple[PublishRequest, Artifact]]:
        """Up to ``limit`` requests to land on ``tag``, oldest first, each with the
        artifact it would land: each not landed yet, its publisher alive and waiting, its
        run still at the staged head it asked with and not published, and its run's row
        locked until this transaction ends (rows another transaction holds are passed
        over, and so are the runs ``passed``)."""
        rows = self._session.execute(
            _WAITING, {"tag": tag, "limit": limit, "passed": list(passed)}
        ).all()
        found = []
        for row in rows:
            request = PublishRequest(
                row.run_id, row.token, row.wait_key, row.tag, row.base_id, row.source_id,
                row.moved_by, row.reason, row.changes,
            )  # fmt: skip
            source = labelled_artifact(row, "landing_")
            assert source is not None, "an inner join found it"
            found.append((request, source))
        return found

    def mark_landed(self, moves: list[tuple[PublishRequest, LandedMove]]) -> None:
        """Write into each request the move that landed it."""
        if not moves:
            return
        self._session.connection().execute(
            _MARK_LANDED,
            [
                {
                    "key_run_id": request.run_id,
                    "key_token": request.token,
                    "revision": move.revision,
                    "from_target_id": move.from_target_id,
                    "to_target_id": move.to_target_id,
                    "fast_forward": move.fast_forward,
                }
                for request, move in moves
            ],
        )

    def forget_abandoned(self, before: datetime) -> int:
        """Delete the requests asked before ``before`` whose publisher no longer waits
        (it died; a request nobody waits for is never landed): how many."""
        condition = requests.c.requested_at < stored(before)
        if self._session.get_bind().dialect.name == "postgresql":
            waiting = func.pg_try_advisory_xact_lock_shared(WAIT_LOCK_CLASS, requests.c.wait_key)
            condition = and_(condition, waiting)
        result = self._session.execute(requests.delete().where(condition))
        return int(result.rowcount)  # type: ignore[attr-defined]


def _landed_move(row: Any) -> LandedMove | None:
    """The move a request's row records, if one landed it."""
    if row is None or row.revision is None:
        return None
    return LandedMove(row.from_target_id, row.to_target_id, row.revision, row.fast_forward)


def _param(name: str, column: str | None = None) -> BindParameter[Any]:
    return bindparam(name, type_=requests.c[column or name].type)


def _ask_statement() -> Insert:
    """``ask``'s upsert, built once (building it costs more than running it)."""
    asked = [
        "run_id", "token", "wait_key", "tag", "base_id", "source_id", "moved_by", "reason",
        "changes", "requested_at",
    ]  # fmt: skip
    statement = insert(requests).values({name: _param(name) for name in asked})
    replaced: dict[str, Any] = {name: statement.excluded[name] for name in asked[1:]}
    replaced |= dict.fromkeys(_LANDED_MOVE)
    return statement.on_conflict_do_update(index_elements=["run_id"], set_=replaced)


def _waiting_statement() -> Select[Any]:
    """``waiting``'s query, built once."""
    source = artifacts.alias("source")
    alive = ~func.pg_try_advisory_xact_lock_shared(WAIT_LOCK_CLASS, requests.c.wait_key)
    return (
        select(requests, *labelled_columns(source, "landing_"))
        .join(runs, runs.c.run_id == requests.c.run_id)
        .join(source, source.c.id == requests.c.source_id)
        .where(
            requests.c.tag == _param("tag"),
            requests.c.revision.is_(None),
            runs.c.tag == requests.c.tag,
            runs.c.publish == PublishMode.RUN.value,
            runs.c.outcome.is_(None),
            runs.c.head_id == requests.c.source_id,
            requests.c.run_id.not_in(bindparam("passed", expanding=True)),
            alive,
        )
        .order_by(requests.c.requested_at, requests.c.run_id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(of=runs, key_share=True, skip_locked=True)
    )


_LANDED_MOVE = ("revision", "from_target_id", "to_target_id", "fast_forward")
_LANDED_COLUMNS = [requests.c[name] for name in _LANDED_MOVE]
_ASK = _ask_statement()
_TURN = (TURN_LOCK_CLASS, func.hashtext(func.concat(func.current_schema(), "/", _param("tag"))))
_WAIT_AS = func.pg_advisory_xact_lock(WAIT_LOCK_CLASS, bindparam("wait_key", type_=Integer))
_WAITING_AS = select(_WAIT_AS).cte("waiting").prefix_with("MATERIALIZED")
"""Shows the publisher waiting first (the lock lasts until the statement commits)."""
_WAIT_OR_TAKE_TURN = select(
    case(
        (func.pg_try_advisory_lock(*_TURN), true()),
        else_=select(false())
        .select_from(select(func.pg_advisory_xact_lock_shared(*_TURN)).subquery("turn_over"))
        .scalar_subquery(),
    )
).select_from(_WAITING_AS)
_QUEUE_FOR_TURN = select(func.pg_advisory_lock(*_TURN)).select_from(_WAITING_AS)
_GIVE_TURN = select(func.pg_advisory_unlock(*_TURN))
_KEY = (
    requests.c.run_id == _param("key_run_id", "run_id"),
    requests.c.token == _param("key_token", "token"),
)
_TAKE_LANDED = (
    requests.delete().where(*_KEY, requests.c.revision.is_not(None)).returning(*_LANDED_COLUMNS)
)
_WITHDRAW = requests.delete().where(*_KEY).returning(*_LANDED_COLUMNS)
_WAITING = _waiting_statement()
_MARK_LANDED = update(requests).where(*_KEY).values({n: _param(n) for n in _LANDED_MOVE})
