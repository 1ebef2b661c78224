"""Group commit for publishes (Postgres): whoever holds a tag's turn also lands the
publishes waiting for it, each as a move of its own, in one transaction.

Publishers of one tag take turns, and each turn's round trips and commit bound the rate.
So a publisher first records what it asks (its run's changes, cut down to the nodes it
changed: all a merge reads of them), then waits for the tag's turn while it holds an
advisory lock of its own. The holder lands its own request, then the waiting requests
whose publishers still wait, oldest first: each merged onto the one before, as if each
publisher had taken its turn, written in a few statements for all of them. A publisher
that finds its move landed returns it. A request the holder cannot land as a clean move
(a conflict, an invalid DAG, nothing to change, an immutable tag) is left to its own
publisher, which decides it alone when it holds the turn. Waiting and asking run outside
a transaction, each statement committed on its own: a publisher that is landed sends no
BEGIN or COMMIT, five round trips in all.
"""

import contextlib
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.domain import Artifact, OutcomeState, Publication, Run, RunOutcome, TagPolicy
from core.errors import MergeConflictError, NotFoundError, PolicyError, ValidationError
from core.repository.publish_request import LandedMove, PublishRequest
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_creation import ArtifactCreation
from core.service.artifact_resolution import ArtifactResolution
from core.service.merges import Incoming, Landing, LostRace, Merges
from core.service.tag_policies import governing
from core.storage.commit_record import Head
from core.storage.uow import UnitOfWorkFactory

MAX_LANDED = 64
"""Requests one turn's holder considers at most, besides its own."""

MAX_WAITS = 3
"""Turns a publisher waits out for another holder to land its request before it waits
to hold the turn itself."""

MAX_CHANGES = 1 << 20
"""Bytes of changes (as JSON) above which a publisher does not queue: it merges alone."""


@dataclass(frozen=True)
class Asked:
    """A request recorded for a publish, and what its run brings in."""

    request: PublishRequest
    incoming: Incoming


class LineLost(LostRace):
    """Landing the waiting requests lost (a merge version of theirs was recorded
    meanwhile): the holder's turn is tried again without them."""


class PublishQueue:
    """Records, lands and reports queued publishes."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        artifacts: ArtifactResolution,
        creation: ArtifactCreation,
        merges: Merges,
    ) -> None:
        self._uow = uow
        self._artifacts = artifacts
        self._creation = creation
        self._merges = merges

    @property
    def queues(self) -> bool:
        """Whether publishes queue: where many processes write (Postgres)."""
        return self._uow.many_writers

    def ask(
        self,
        uow: UnitOfWork,
        run: Run,
        head: Artifact | None,
        moved_by: str | None,
        reason: str,
    ) -> Asked | None:
        """A step: record a request to publish ``run``, whose staged head is ``head``
        (read with it); ``None`` when its changes are too large to queue."""
        assert run.head_id is not None, "a run with nothing staged has nothing to ask"
        if head is not None:  # its document is then replayed from its parent's, if known
            self._artifacts.by_id.put(head.id, head, uow)
        incoming = self._merges.incoming(uow, run.base_id, run.head_id)
        changes = incoming.to_json()
        if len(changes) > MAX_CHANGES:
            return None
        request = PublishRequest(
            run_id=run.run_id,
            token=uuid.uuid4(),
            wait_key=secrets.randbits(32) - (1 << 31),
            tag=run.tag,
            base_id=run.base_id,
            source_id=incoming.source_id,
            moved_by=moved_by,
            reason=reason,
            changes=changes,
        )
        uow.publish_requests.ask(request)
        return Asked(request, incoming)

    @contextlib.contextmanager
    def turn(self, asked: Asked) -> Iterator[Publication | None]:
        """Wait for ``asked``'s tag's turn, showing its publisher waiting: the block gets
        the publication of a holder that landed the request, else ``None`` while this
        publisher holds the turn (on the connection of the caller's ``one_connection``
        block, given up when the block ends). It waits out up to ``MAX_WAITS`` holders
        together with the other waiters, then waits in line. Outside a transaction: a
        publisher landed so sends no BEGIN or COMMIT."""
        request = asked.request
        landed, holds = None, False
        try:
            with self._uow(autocommit=True) as uow:
                for _ in range(MAX_WAITS):
                    holds = uow.publish_requests.wait_or_take_turn(request.tag, request.wait_key)
                    if holds or (landed := self._taken(uow, asked)) is not None:
                        break
                else:
                    uow.publish_requests.queue_for_turn(request.tag, request.wait_key)
                    holds = True
                uow.commit()
            yield landed
        finally:
            if holds:
                with self._uow(autocommit=True) as uow:
                    uow.publish_requests.give_turn(request.tag)
                    uow.commit()

    def withdraw(self, uow: UnitOfWork, asked: Asked) -> Publication | None:
        """A step: delete ``asked``'s request; the publication of a holder that landed
        it, if one did (once this publisher holds the turn, no other can)."""
        request = asked.request
        return _publication(request, uow.publish_requests.withdraw(request.run_id, request.token))

    def _taken(self, uow: UnitOfWork, asked: Asked) -> Publication | None:
        """A step: the publication a holder landed for ``asked``, if one did (its request
        is then deleted)."""
        request = asked.request
        return _publication(
            request, uow.publish_requests.take_landed(request.run_id, request.token)
        )

    def land_waiting(
        self,
        uow: UnitOfWork,
        tag: str,
        head: Head,
        policies: tuple[TagPolicy, ...],
        own: PublishRequest | None = None,
    ) -> Publication | None:
        """A step, under ``tag``'s lock with the tag at ``head``: land the requests
        waiting for it that merge cleanly, each a move of its own with its run id, its
        run's outcome and its request recording it. ``own``, the holder's request (its
        run locked and still at the head it asked with), lands first: its publication
        is returned; its conflict or refusal is raised, as its publish's, and when the
        tag holds it already nothing lands (``None``). ``LineLost`` when their writes
        lost."""
        policy = governing(policies, tag)
        if head.target_id is None or (policy is not None and policy.immutable):
            return None
        landings: list[tuple[PublishRequest, Landing]] = []
        passed: list[str] = []
        ours = None  # the tag's document, once a landing made it
        if own is not None:
            if (landing := self._landing(uow, tag, head, own, policies, ours, own=True)) is None:
                return None
            passed.append(own.run_id)
            landings.append((own, landing))
            head, ours = landing.head, landing.document
        # again while there are more: those who began to wait while it landed the last
        while len(passed) < MAX_LANDED and (
            found := uow.publish_requests.waiting(tag, MAX_LANDED - len(passed), passed)
        ):
            for request, source in found:
                passed.append(request.run_id)
                self._artifacts.by_id.put(source.id, source, uow)
                landing = self._landing(uow, tag, head, request, policies, ours)
                if landing is not None:
                    landings.append((request, landing))
                    head, ours = landing.head, landing.document
        if not landings:
            return None
        if uow.commits.apply_line([landing.record for _, landing in landings]) is None:
            raise LineLost
        moves = [(request, _landed_move(landing)) for request, landing in landings]
        uow.runs.record_outcomes(
            [
                (
                    request.run_id,
                    RunOutcome(
                        OutcomeState.PUBLISHED,
                        revision=move.revision,
                        to_target_id=move.to_target_id,
                    ),
                )
                for request, move in moves
            ]
        )
        if own is None:
            uow.publish_requests.mark_landed(moves)
            return None
        if len(moves) > 1:
            uow.publish_requests.mark_landed(moves[1:])
        return _publication(own, moves[0][1])

    def _landing(
        self,
        uow: UnitOfWork,
        tag: str,
        head: Head,
        request: PublishRequest,
        policies: tuple[TagPolicy, ...],
        ours: dict[str, Any] | None,
        *,
        own: bool = False,
    ) -> Landing | None:
        """``request``'s move onto ``head`` (whose document is ``ours``, if known), its
        merge version kept for the next one to build on; ``None``: left to its
        publisher (the holder's ``own`` request: only when the tag holds it already;
        its conflict or refusal is raised)."""
        incoming = Incoming.from_json(request.base_id, request.source_id, request.changes)
        try:
            landing = self._merges.landing(
                uow, tag, head, request.base_id, request.source_id, request.moved_by,
                request.reason or f"publish run {request.run_id}", request.run_id,
                f"run {request.run_id!r}", incoming=incoming, policies=policies, ours=ours,
            )  # fmt: skip
        except (MergeConflictError, PolicyError, ValidationError, NotFoundError):
            if own:
                raise
            return None
        if landing is not None and landing.version is not None:
            self._creation.remember(uow, landing.version)
        return landing


def _landed_move(landing: Landing) -> LandedMove:
    swap, result = landing.swap, landing.result
    return LandedMove(swap.from_target_id, swap.to_target_id, result.revision, result.fast_forward)


def _publication(request: PublishRequest, move: LandedMove | None) -> Publication | None:
    if move is None:
        return None
    return Publication(
        request.run_id, request.tag, move.from_target_id, move.to_target_id, move.revision,
        move.fast_forward, True,
    )  # fmt: skip
