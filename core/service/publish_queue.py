"""Group commit for publishes (Postgres): whoever holds a tag's turn also lands the
publishes waiting for it, each as a move of its own, in one transaction.

Publishers of one tag take turns, and each turn's round trips and commit bound the rate.
So a publisher first records what it asks (its run's changes, cut down to the nodes it
changed: all a merge reads of them), then waits for the tag's turn while it holds an
advisory lock of its own. The holder, after its own publish, lands the waiting requests
whose publishers still wait, oldest first: each merged onto the one before, as if each
publisher had taken its turn, written in a few statements for all of them. A publisher
that finds its move landed returns it. A request the holder cannot land as a clean move
(a conflict, an invalid DAG, nothing to change, an immutable tag) is left to its own
publisher, which decides it alone when it holds the turn.
"""

import secrets
import uuid
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

    def await_turn(self, uow: UnitOfWork, asked: Asked) -> Publication | None:
        """A step: wait, showing this publisher waiting, until it holds its tag's turn
        (``None``: then it publishes, and lands the others waiting), or until a holder
        landed its request (that publication)."""
        tag = asked.request.tag
        if uow.publish_requests.take_turn(tag, asked.request.wait_key):
            return None
        for _ in range(MAX_WAITS):  # each holder lands those who waited before it began
            uow.publish_requests.wait_turn(tag, hold=False)
            if (landed := self.take_landed(uow, asked)) is not None:
                return landed
            if uow.publish_requests.take_turn(tag):
                return None
        uow.publish_requests.wait_turn(tag, hold=True)
        return self.take_landed(uow, asked)

    def take_landed(self, uow: UnitOfWork, asked: Asked) -> Publication | None:
        """A step: the publication a lock holder landed for ``asked``, if one did (its
        request is then withdrawn)."""
        request = asked.request
        move = uow.publish_requests.take_landed(request.run_id, request.token)
        if move is None:
            return None
        return Publication(
            request.run_id, request.tag, move.from_target_id, move.to_target_id,
            move.revision, move.fast_forward, True,
        )  # fmt: skip

    def withdraw(self, asked: Asked) -> None:
        """Delete ``asked``'s request, in a transaction of its own."""
        with self._uow() as uow:
            uow.publish_requests.withdraw(asked.request.run_id, asked.request.token)
            uow.commit()

    def land_waiting(
        self, uow: UnitOfWork, tag: str, head: Head, policies: tuple[TagPolicy, ...]
    ) -> None:
        """A step, under ``tag``'s lock with the tag at ``head``: land the requests
        waiting for it that merge cleanly, each a move of its own with its run id, its
        run's outcome and its request recording it. ``LineLost`` when their writes lost."""
        policy = governing(policies, tag)
        if head.target_id is None or (policy is not None and policy.immutable):
            return
        landings: list[tuple[PublishRequest, Landing]] = []
        passed: list[str] = []
        ours = None  # the tag's document, once a landing made it
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
            return
        if uow.commits.apply_line([landing.record for _, landing in landings]) is None:
            raise LineLost
        uow.runs.record_outcomes(
            [
                (
                    request.run_id,
                    RunOutcome(
                        OutcomeState.PUBLISHED,
                        revision=landing.result.revision,
                        to_target_id=landing.swap.to_target_id,
                    ),
                )
                for request, landing in landings
            ]
        )
        uow.publish_requests.mark_landed(
            [
                (
                    request,
                    LandedMove(
                        landing.swap.from_target_id,
                        landing.swap.to_target_id,
                        landing.result.revision,
                        landing.result.fast_forward,
                    ),
                )
                for request, landing in landings
            ]
        )

    def _landing(
        self,
        uow: UnitOfWork,
        tag: str,
        head: Head,
        request: PublishRequest,
        policies: tuple[TagPolicy, ...],
        ours: dict[str, Any] | None,
    ) -> Landing | None:
        """``request``'s move onto ``head`` (whose document is ``ours``, if known), its
        merge version kept for the next one to build on; ``None``: left to its
        publisher."""
        incoming = Incoming.from_json(request.base_id, request.source_id, request.changes)
        try:
            landing = self._merges.landing(
                uow, tag, head, request.base_id, request.source_id, request.moved_by,
                request.reason or f"publish run {request.run_id}", request.run_id,
                f"run {request.run_id!r}", incoming=incoming, policies=policies, ours=ours,
            )  # fmt: skip
        except (MergeConflictError, PolicyError, ValidationError, NotFoundError):
            return None
        if landing is not None and landing.version is not None:
            self._creation.remember(uow, landing.version)
        return landing
