"""Publishing a ``publish="run"`` run: its staged head lands on its tag in one move."""

from collections.abc import Sequence

from core.domain import (
    OutcomeState,
    Publication,
    PublishMode,
    Run,
    RunOutcome,
    RunStatus,
    TagPolicy,
)
from core.errors import (
    ConflictError,
    MergeConflictError,
    NotFoundError,
    PolicyError,
    ValidationError,
)
from core.identifiers import check_run_id, check_text
from core.repository.unit_of_work import UnitOfWork
from core.service.merges import Incoming, LostRace, Merges
from core.service.publish_queue import Asked, LineLost, PublishQueue
from core.service.tag import MAX_SWAP_ATTEMPTS
from core.service.tag_moves import check_move_fields
from core.storage.commit_record import Head
from core.storage.uow import UnitOfWorkFactory


class RunPublishing:
    """Publishes runs (write, audit, publish) and records how each attempt ended."""

    def __init__(
        self, uow: UnitOfWorkFactory[UnitOfWork], merges: Merges, queue: PublishQueue
    ) -> None:
        self._uow = uow
        self._merges = merges
        self._queue = queue

    def publish(
        self, run_id: str, *, moved_by: str | None = None, reason: str | None = None
    ) -> Publication:
        """Move the run's tag once to hold everything the run staged: to the staged head
        itself when the tag has not moved since the run's base (a fast-forward), else to a
        three-way merge with the run's base as merge base, tried again if the tag moves
        meanwhile. The move carries the run id. Publishing twice moves once; nothing
        staged, or only what the tag holds, moves nothing. A conflict is a
        ``MergeConflictError``: the tag stays, and the run records it.

        Where many processes write, the publish queues (``core.service.publish_queue``):
        whoever holds the tag's turn may land it, while this call waits."""
        check_run_id(run_id)
        check_move_fields(moved_by, reason, None)
        why = reason or f"publish run {run_id}"
        with self._uow.one_connection():
            return self._publish_queued(run_id, moved_by, why)

    def _publish_queued(self, run_id: str, moved_by: str | None, why: str) -> Publication:
        """``publish``; where publishes queue, its request queued first, and the tag's
        turn held while it publishes (unless a holder landed it meanwhile)."""
        asked = self._ask(run_id, moved_by, why) if self._queue.queues else None
        turn = _Turn(asked)
        if asked is None:
            return self._publish_held(run_id, moved_by, why, turn)
        withdrawn = False  # the request is deleted once a commit took it
        try:
            with self._queue.turn(asked) as landed:
                if landed is not None:
                    withdrawn = True
                    return landed
                publication = self._publish_held(run_id, moved_by, why, turn)
                withdrawn = True
                return publication
        finally:
            if not withdrawn:
                with self._uow() as uow:
                    self._queue.withdraw(uow, asked)
                    uow.commit()

    def _publish_held(
        self, run_id: str, moved_by: str | None, why: str, turn: "_Turn"
    ) -> Publication:
        """``publish``, its turn held if it queued, in attempts of a transaction each."""
        try:
            publication: Publication = self._uow.run(
                lambda uow: self._attempt(uow, run_id, moved_by, why, turn),
                lost=LostRace,
                attempts=MAX_SWAP_ATTEMPTS,
            )
        except MergeConflictError as exc:
            self.record_outcome(
                run_id, RunOutcome(OutcomeState.CONFLICT, conflicts=tuple(exc.conflicts))
            )
            raise
        except LostRace:
            raise ConflictError(
                f"the tag of run {run_id!r} kept moving while it published"
            ) from None
        return publication

    def _ask(self, run_id: str, moved_by: str | None, reason: str) -> Asked | None:
        """Queue the publish of ``run_id``, if there is anything to publish (each
        statement committed on its own: the lock holder checks the request again)."""
        with self._uow(autocommit=True) as uow:
            found = uow.runs.get_with_head(run_id)
            run = _publishing(run_id, None if found is None else found[0])
            staged = run.head_id
            if staged is None or staged == run.base_id or run.outcome is not None:
                return None
            asked = self._queue.ask(uow, run, found and found[1], moved_by, reason)
            uow.commit()
        return asked

    def _attempt(
        self, uow: UnitOfWork, run_id: str, moved_by: str | None, reason: str, turn: "_Turn"
    ) -> Publication:
        asked = turn.asked
        if asked is not None:  # its publisher holds the turn: nobody else lands it now
            if (landed := self._queue.withdraw(uow, asked)) is not None:
                return landed
            tag, incoming = asked.request.tag, asked.incoming
        else:
            # what the run brings in is read before the tag is locked, so that the
            # publishes queued on it hold the lock only to merge and write
            run = _staged_run(uow, run_id)
            tag, incoming = run.tag, None
            if run.head_id is not None and run.head_id != run.base_id and run.outcome is None:
                incoming = self._merges.incoming(uow, run.base_id, run.head_id)
        locked = uow.tags.lock(tag)  # decide on a tag nobody moves meanwhile
        run = _staged_run(uow, run_id, lock=True)  # two publishes of one run take turns
        # the policies after the lock: one set while this publish waited binds it
        policies = uow.commits.policies()
        head = uow.commits.head(run.tag) if locked is None else Head(*locked)
        try:
            if (landed := self._land_line(uow, run, head, policies, turn)) is not None:
                return landed
            publication = self._publish(uow, run, head, moved_by, reason, incoming, policies)
            if turn.land_others and self._queue.queues:
                if publication.changed:
                    head = Head(publication.to_target_id, publication.revision)
                self._queue.land_waiting(uow, tag, head, policies)
        except LineLost:
            turn.land_others = False
            raise
        return publication

    def _land_line(
        self,
        uow: UnitOfWork,
        run: Run,
        head: Head,
        policies: tuple[TagPolicy, ...],
        turn: "_Turn",
    ) -> Publication | None:
        """A step, holding the turn: land the run's queued request first in the line of
        those waiting, when it still stands for the run (locked): its publication, its
        conflict or refusal raised, else ``None`` (nothing landed: the run publishes on
        its own)."""
        asked = turn.asked
        if asked is None or not turn.land_others or not _stands_for(asked, run):
            return None
        return self._queue.land_waiting(uow, run.tag, head, policies, own=asked.request)

    def _publish(
        self,
        uow: UnitOfWork,
        run: Run,
        head: Head,
        moved_by: str | None,
        reason: str,
        incoming: Incoming | None,
        policies: tuple[TagPolicy, ...],
    ) -> Publication:
        """A step, under the tag's lock with the tag at ``head``: publish ``run``."""
        staged = run.head_id
        if run.outcome is not None and run.outcome.state is OutcomeState.PUBLISHED:
            return Publication(
                run.run_id, run.tag, run.outcome.to_target_id, run.outcome.to_target_id,
                run.outcome.revision or head.revision, False, False,
            )  # fmt: skip
        if staged is None or staged == run.base_id:
            uow.runs.record_outcome(run.run_id, RunOutcome(OutcomeState.UNCHANGED))
            return Publication(
                run.run_id, run.tag, head.target_id, head.target_id, head.revision, False, False
            )
        landing = self._merges.landing(
            uow, run.tag, head, run.base_id, staged, moved_by, reason, run.run_id,
            f"run {run.run_id!r}", incoming=incoming, policies=policies,
        )  # fmt: skip
        landed = self._merges.land(uow, run.tag, head, landing)
        state = OutcomeState.PUBLISHED if landed.changed else OutcomeState.UNCHANGED
        uow.runs.record_outcome(
            run.run_id,
            RunOutcome(state, revision=landed.revision, to_target_id=landed.to_target_id),
        )
        return Publication(
            run.run_id,
            run.tag,
            landed.from_target_id,
            landed.to_target_id,
            landed.revision,
            landed.fast_forward,
            landed.changed,
        )

    def publish_if_passed(
        self, run_id: str, *, status: RunStatus | str, failed_checks: Sequence[str] = ()
    ) -> RunOutcome:
        """The audit: publish a ``publish="run"`` run that ended ``SUCCESS`` with no
        failed check of severity ``ERROR`` (``failed_checks`` names those), else record
        why not; a conflict, or a tag policy's refusal, is recorded, not raised. Once: a
        run with an outcome keeps it."""
        check_run_id(run_id)
        checks = tuple(sorted(check_text_list(failed_checks)))
        with self._uow() as uow:
            run = _staged_run(uow, run_id)
            uow.commit()
        if run.outcome is not None:
            return run.outcome
        if status != RunStatus.SUCCESS:
            outcome = RunOutcome(OutcomeState.FAILED)
        elif checks:
            outcome = RunOutcome(OutcomeState.CHECKS_FAILED, checks=checks)
        else:
            try:
                self.publish(run_id, moved_by=run.job_name)
            except MergeConflictError as exc:
                return RunOutcome(OutcomeState.CONFLICT, conflicts=tuple(exc.conflicts))
            except PolicyError:  # the tag became immutable: recorded, so not tried again
                outcome = RunOutcome(OutcomeState.REFUSED)
                self.record_outcome(run_id, outcome)
                return outcome
            with self._uow() as uow:
                outcome = _staged_run(uow, run_id).outcome or RunOutcome(OutcomeState.UNCHANGED)
                uow.commit()
            return outcome
        self.record_outcome(run_id, outcome)
        return outcome

    def record_outcome(self, run_id: str, outcome: RunOutcome) -> None:
        """Record why a ``publish="run"`` run was not published (or how it was)."""
        check_run_id(run_id)
        if not isinstance(outcome, RunOutcome):
            raise ValidationError(f"expected a RunOutcome, got {outcome!r}")
        with self._uow() as uow:
            _staged_run(uow, run_id)
            uow.runs.record_outcome(run_id, outcome)
            uow.commit()


def _staged_run(uow: UnitOfWork, run_id: str, *, lock: bool = False) -> Run:
    """The run; with ``lock`` held until ``uow`` ends (a concurrent publish of it waits,
    then reads the outcome this one records)."""
    return _publishing(run_id, uow.runs.get(run_id, lock=lock))


def _stands_for(asked: Asked, run: Run) -> bool:
    """Whether ``asked`` still asks to publish ``run`` as it is: unpublished, on the tag
    and at the staged head it asked with."""
    request = asked.request
    return run.outcome is None and run.tag == request.tag and run.head_id == request.source_id


def _publishing(run_id: str, run: Run | None) -> Run:
    """``run`` (``run_id``'s record), checked to be one that publishes whole."""
    if run is None:
        raise NotFoundError(f"run {run_id!r} not found")
    if run.publish is not PublishMode.RUN:
        raise ValidationError(
            f"run {run_id!r} publishes each output as it is committed (publish='output'): "
            "there is nothing to publish"
        )
    return run


def check_text_list(names: Sequence[str]) -> list[str]:
    """Check names (of asset checks) are short text."""
    if isinstance(names, str):
        raise ValidationError(f"expected a list of check names, got the text {names!r}")
    for name in names:
        check_text(name, "check name", 255)
    return list(names)


class _Turn:
    """One publish call's state across its attempts: its queued request, and whether to
    land the requests waiting with it (not after that lost once)."""

    def __init__(self, asked: Asked | None) -> None:
        self.asked = asked
        self.land_others = True
