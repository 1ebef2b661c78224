"""Runs: a snapshot pinned to the tag's target when the run begins, and its status."""

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from core.domain import Artifact, Direction, NodeValue, PublishMode, Run, RunIO, RunStatus
from core.errors import ConflictError, NotFoundError, ValidationError
from core.identifiers import (
    MIN_RUN_PREFIX,
    check_cas_id,
    check_job_name,
    check_limit,
    check_media_type,
    check_node_id,
    check_partition_key,
    check_publish,
    check_run_id,
    check_size,
    check_tag_name,
)
from core.repository.clock import utc_now
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_creation import ArtifactCreation, check_record
from core.service.artifact_resolution import ArtifactResolution
from core.service.run_publishing import RunPublishing, check_text_list
from core.service.tag_policies import refuse_run_in
from core.storage.commit_record import CommitRecord, RunValue
from core.storage.committed_cache import CommittedCache
from core.storage.uow import UnitOfWorkFactory

FINAL_STATUSES = frozenset(RunStatus) - {RunStatus.STARTED}
PIN_CACHE_SIZE = 1024


class _RunExists(Exception):
    """Another caller recorded this run id first without taking its lock (``create_run``
    always does); a snapshot made in our own transaction is rolled back."""


class Pin(NamedTuple):
    """What a run is pinned to, and how it publishes: fixed when it is created."""

    tag: str
    snapshot_id: uuid.UUID
    base_id: uuid.UUID | None
    publish: PublishMode

    @classmethod
    def of(cls, run: Run) -> "Pin":
        return cls(run.tag, run.snapshot_id, run.base_id, run.publish)

    def check(self, run_id: str, tag: str, publish: PublishMode | None) -> None:
        """A run uses one tag, and publishes one way (``None``: either)."""
        if tag != self.tag:
            raise ConflictError(
                f"run {run_id!r} is pinned to tag {self.tag!r}, so it cannot read or write "
                f"tag {tag!r} as of its start: a run uses one tag"
            )
        if publish is not None and publish != self.publish:
            raise ConflictError(
                f"run {run_id!r} publishes {self.publish.value!r}, so it cannot publish "
                f"{publish.value!r}: a run publishes one way"
            )


class RunService:
    """Records runs; ``create_run`` is idempotent per run id, across processes."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        artifacts: ArtifactResolution,
        creation: ArtifactCreation,
        publishing: RunPublishing,
    ) -> None:
        self._uow = uow
        self._artifacts = artifacts
        self._creation = creation
        self.publishing = publishing
        self.publish = publishing.publish
        self.publish_if_passed = publishing.publish_if_passed
        self.record_outcome = publishing.record_outcome
        self._pins = CommittedCache[str, Pin](PIN_CACHE_SIZE)

    def pin(
        self,
        run_id: str,
        tag: str = "main",
        *,
        job_name: str | None = None,
        at_version: str | None = None,
        publish: PublishMode | str | None = None,
        parent_run_id: str | None = None,
    ) -> tuple[uuid.UUID, uuid.UUID | None]:
        """Make sure ``run_id`` is recorded (``create_run``); return its snapshot and base.

        A run's pin never changes, so this process remembers it.
        """
        mode = check_publish(publish)
        pinned = self._pins.get(run_id)
        if pinned is None:
            run = self.create_run(
                run_id, tag, job_name=job_name, at_version=at_version,
                publish=mode or PublishMode.OUTPUT, parent_run_id=parent_run_id,
            )  # fmt: skip
            return run.snapshot_id, run.base_id
        pinned.check(run_id, tag, mode)
        return pinned.snapshot_id, pinned.base_id

    def pin_in(
        self,
        uow: UnitOfWork,
        run_id: str,
        tag: str,
        *,
        job_name: str | None = None,
        publish: PublishMode | None = None,
    ) -> Pin:
        """A step: ``pin`` in ``uow`` (``publish``: ``None`` takes the run's mode, or
        ``"output"`` for a new run); the run's pin."""
        pinned = self._pins.get(run_id, uow)
        if pinned is None:
            try:
                run = self._create_in(
                    uow, run_id, tag, job_name, None, publish or PublishMode.OUTPUT, None
                )
            except _RunExists:  # its snapshot stays in ``uow``, unreferenced
                run = self._remember(uow, self._get_in(uow, run_id), tag, publish)
            return Pin.of(run)
        pinned.check(run_id, tag, publish)
        return pinned

    def create_run(
        self,
        run_id: str,
        tag: str = "main",
        *,
        job_name: str | None = None,
        at_version: str | None = None,
        publish: PublishMode | str = PublishMode.OUTPUT,
        parent_run_id: str | None = None,
    ) -> Run:
        """Pin ``run_id`` to ``tag``'s current target, or to the version ``at_version``
        (a version hash: the run of a tag move builds what the move published). Once:
        later calls return that pin, and a call naming another tag, or another way to
        ``publish``, is a ``ConflictError``.

        ``publish="run"`` stages the run's outputs on its own head, for ``publish`` to
        land on the tag together; a re-execution of such a run (``parent_run_id``) starts
        from its parent's base and staged head, so that publishing it publishes the
        corrected whole. A run on a tag that does not exist yet (a pipeline's first run) is
        pinned to no base: it reads nothing it did not produce itself. A new run that its
        tag's policy would never let land is refused (``PolicyError``, nothing recorded): a
        ``publish="output"`` run on a protected tag, any run on an immutable tag that exists.
        """
        check_run_id(run_id)
        check_tag_name(tag)
        check_job_name(job_name)
        mode = check_publish(publish) or PublishMode.OUTPUT
        if parent_run_id is not None:
            check_run_id(parent_run_id)
        try:
            with self._uow() as uow:
                run = self._create_in(uow, run_id, tag, job_name, at_version, mode, parent_run_id)
                uow.commit()
        except _RunExists:  # our snapshot was rolled back with our transaction
            with self._uow() as uow:
                run = self._remember(uow, self._get_in(uow, run_id), tag, mode)
                uow.commit()
        return run

    def _create_in(
        self,
        uow: UnitOfWork,
        run_id: str,
        tag: str,
        job_name: str | None,
        at_version: str | None,
        publish: PublishMode,
        parent_run_id: str | None,
    ) -> Run:
        """Record ``run_id`` (``create_run``) in ``uow``; ``_RunExists`` if another caller
        recorded it meanwhile."""
        check_run_id(run_id)
        check_tag_name(tag)
        check_job_name(job_name)
        uow.runs.lock(run_id)  # a concurrent first touch finishes, or waits for us
        run = uow.runs.get(run_id)
        if run is not None:
            return self._remember(uow, run, tag, publish)
        refuse_run_in(uow, tag, publish)
        parent = self._staged_parent(uow, parent_run_id, tag, publish)
        base: Artifact | None
        if parent is not None:
            base = None if parent.base_id is None else self._artifacts.get_in(uow, parent.base_id)
        elif at_version is not None:
            base = self._artifacts.get_by_version_hash_in(uow, at_version)
        else:
            head = uow.tags.get(tag)
            base = None if head is None else self._artifacts.get_in(uow, head.target_id)
        snapshot = {
            "run_id": run_id,
            "tag": tag,
            "base_id": base and str(base.id),
            "base_version_hash": base and base.version_hash,
            "job": job_name,
            "started_at": datetime.now(UTC).isoformat(),
        }
        snapshot_id = self._creation.add_run_snapshot_in(
            uow,
            run_id,
            snapshot,
            base and base.id,
            job_name,
            check_record(run_id, job_name, None),
        )
        run = uow.runs.insert(
            run_id,
            snapshot_id=snapshot_id,
            base_id=base and base.id,
            tag=tag,
            job_name=job_name,
            status=RunStatus.STARTED.value,
            publish=publish,
            head_id=parent and parent.head_id,
        )
        if run is None:
            raise _RunExists
        return self._remember(uow, run, tag, publish)

    def _staged_parent(
        self, uow: UnitOfWork, parent_run_id: str | None, tag: str, publish: PublishMode
    ) -> Run | None:
        """The run a ``publish="run"`` re-execution continues from, if it is one."""
        if parent_run_id is None or publish is not PublishMode.RUN:
            return None
        parent = uow.runs.get(parent_run_id)
        if parent is None or parent.publish is not PublishMode.RUN or parent.tag != tag:
            return None
        return parent

    def _remember(self, uow: UnitOfWork, run: Run, tag: str, publish: PublishMode | None) -> Run:
        pin = Pin.of(run)
        self._pins.put(run.run_id, pin, uow)
        pin.check(run.run_id, tag, publish)
        return run

    def list_runs(self, *, limit: int = 50) -> list[Run]:
        """The latest runs, newest first."""
        check_limit(limit)
        with self._uow() as uow:
            runs = uow.runs.recent(limit)
            uow.commit()
        return runs

    def get_run(self, run_id: str) -> Run:
        check_run_id(run_id)
        with self._uow() as uow:
            run = self._get_in(uow, run_id)
            uow.commit()
        return run

    def _get_in(self, uow: UnitOfWork, run_id: str) -> Run:
        run = uow.runs.get(run_id)
        if run is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return run

    def find_run(self, run_id: str) -> Run:
        """The run with this id, else the one run whose id starts with it (at least
        ``MIN_RUN_PREFIX`` characters, as the Dagster UI shows ids)."""
        check_run_id(run_id)
        with self._uow() as uow:
            run = uow.runs.get(run_id)
            if run is None and len(run_id) >= MIN_RUN_PREFIX:
                matches = uow.runs.find_by_prefix(run_id, 2)
                if len(matches) > 1:
                    raise ValidationError(
                        f"ambiguous run id prefix {run_id!r}: several runs start so"
                    )
                run = matches[0] if matches else None
            uow.commit()
        if run is not None:
            return run
        raise NotFoundError(
            f"run {run_id!r} not found (nor one run whose id starts so, with at least "
            f"{MIN_RUN_PREFIX} characters)"
        )

    def record_io(
        self,
        run_id: str,
        *,
        outputs: Sequence[NodeValue] = (),
        inputs: Sequence[NodeValue] = (),
    ) -> None:
        """Record that ``run_id`` produced ``outputs`` and read ``inputs`` (the latest
        record per node and partition wins)."""
        with self._uow() as uow:
            self.record_io_in(uow, run_id, outputs=outputs, inputs=inputs)
            uow.commit()

    def record_io_in(
        self,
        uow: UnitOfWork,
        run_id: str,
        *,
        outputs: Sequence[NodeValue] = (),
        inputs: Sequence[NodeValue] = (),
    ) -> None:
        """A step: ``record_io`` in ``uow``."""
        check_run_id(run_id)
        values = run_values(outputs=outputs, inputs=inputs)
        if not values:
            return
        if not self._pins.contains(run_id, uow) and uow.runs.get(run_id) is None:
            raise NotFoundError(f"run {run_id!r} not found")
        uow.commits.apply(CommitRecord(utc_now(), run_id=run_id, run_values=values))

    def get_output(self, run_id: str, node: str, partition_key: str | None) -> NodeValue | None:
        """The value ``run_id`` produced for ``node`` (and partition), if it did."""
        with self._uow() as uow:
            value = self.get_output_in(uow, run_id, node, partition_key)
            uow.commit()
        return value

    def get_output_in(
        self, uow: UnitOfWork, run_id: str, node: str, partition_key: str | None
    ) -> NodeValue | None:
        """A step: ``get_output`` in ``uow``."""
        check_run_id(run_id)
        io = uow.run_io.get(run_id, Direction.OUTPUT, node, partition_key)
        return (
            None
            if io is None
            else NodeValue(io.node, io.partition_key, io.cas_id, io.media_type, io.size)
        )

    def get_run_io(self, run_id: str) -> list[RunIO]:
        """Everything ``run_id`` produced and read: its lineage."""
        check_run_id(run_id)
        with self._uow() as uow:
            self._get_in(uow, run_id)
            lineage = uow.run_io.for_run(run_id)
            uow.commit()
        return lineage

    def finish_run(self, run_id: str, status: str, *, finished_at: datetime | None = None) -> Run:
        """Record a final status, reached at ``finished_at`` (a time-zone aware time;
        default: now); finishing again with the same status changes nothing."""
        check_run_id(run_id)
        if finished_at is not None and (
            not isinstance(finished_at, datetime) or finished_at.utcoffset() is None
        ):
            raise ValidationError(
                f"invalid finish time {finished_at!r}: expected a time-zone aware datetime"
            )
        if not isinstance(status, str) or status not in FINAL_STATUSES:
            raise ValidationError(
                f"invalid run status {status!r}: expected one of "
                + ", ".join(sorted(final.value for final in FINAL_STATUSES))
            )
        with self._uow() as uow:
            run = uow.runs.finish(run_id, status, finished_at) or uow.runs.get(run_id)
            uow.commit()
        if run is None:
            raise NotFoundError(f"run {run_id!r} not found")
        if run.status != status:
            raise ConflictError(f"run {run_id!r} already finished as {run.status!r}")
        return run

    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        finished_at: datetime | None = None,
        failed_checks: Sequence[str] = (),
    ) -> Run:
        """Record how a run ended, as its orchestrator saw it: its final status (a status
        recorded before stands), and for a ``publish="run"`` run not audited yet, the
        audit (``publish_if_passed``, ``failed_checks`` naming its failed ``ERROR``
        checks). Repeating it changes nothing. The run, as recorded now."""
        check_text_list(failed_checks)
        try:
            run = self.finish_run(run_id, status, finished_at=finished_at)
        except ConflictError:  # finished before, as something else: that status stands
            run = self.get_run(run_id)
        if run.publish is PublishMode.RUN and run.outcome is None:
            # the outcome it returns is the one recorded (or found recorded): no re-read
            outcome = self.publish_if_passed(run_id, status=status, failed_checks=failed_checks)
            run = dataclasses.replace(run, outcome=outcome)
        return run


def run_values(
    *, outputs: Sequence[NodeValue] = (), inputs: Sequence[NodeValue] = ()
) -> tuple[RunValue, ...]:
    """What a run wrote and read, checked, as a commit records it."""
    entries = [(Direction.OUTPUT, value) for value in outputs]
    entries += [(Direction.INPUT, value) for value in inputs]
    for _, value in entries:
        check_node_id(value.node)
        check_partition_key(value.partition_key)
        check_cas_id(value.cas_id)
        check_media_type(value.media_type)
        check_size(value.size)
    return tuple(
        RunValue(d, v.node, v.partition_key, v.cas_id, v.media_type, v.size) for d, v in entries
    )
