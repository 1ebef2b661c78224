"""Output commits: a pipeline's outputs become node values on its tag."""

import io
from functools import partial
from typing import BinaryIO, cast

from core.dag import with_node_value
from core.domain import CreateWorkflowResponse, NodeValue, OutputCommit, PublishMode
from core.errors import ConflictError, PolicyError, ValidationError
from core.identifiers import (
    check_content,
    check_job_name,
    check_media_type,
    check_node_id,
    check_partition_key,
    check_publish,
    check_run_id,
    check_tag_name,
    check_text,
)
from core.repository.unit_of_work import UnitOfWork
from core.service.asset_lineage import RunLineage
from core.service.cas import CasService
from core.service.run import RunService, run_values
from core.service.tag import MAX_SWAP_ATTEMPTS
from core.service.workflow_commits import WorkflowCommits
from core.storage.uow import UnitOfWorkFactory

LARGE_VALUE = 1 << 20
"""Values at least this big are written to the blob store before the commit's transaction."""


def check_output(
    run_id: object,
    tag: object,
    node: object,
    deps: object,
    media_type: object,
    job_name: object,
) -> None:
    """What every output commit checks before anything is stored (node ids by the rule
    a DAG document's nodes and deps follow too)."""
    check_run_id(run_id)
    check_tag_name(tag)
    check_node_id(node)
    if not isinstance(deps, list | tuple):
        raise ValidationError(f"invalid deps {deps!r}: expected a list of node ids")
    for dep in deps:
        check_node_id(dep, "in deps")
    check_media_type(media_type)
    check_job_name(job_name)


class _Refused(Exception):
    """Carries a ``PolicyError`` past the retries of lost races."""

    def __init__(self, error: PolicyError) -> None:
        super().__init__(str(error))
        self.error = error


def check_stream(stream: object) -> BinaryIO:
    """``stream`` if it is a binary file-like object to read a value from."""
    if isinstance(stream, io.TextIOBase) or not callable(getattr(stream, "read", None)):
        raise ValidationError(
            f"stream must be a binary file-like object, got {type(stream).__name__}"
        )
    return cast(BinaryIO, stream)


class AssetOutputs:
    """Each output becomes the node's value on the tag, with the run's pin, the new
    version, the tag's move and the run's lineage in one unit of work."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        cas: CasService,
        workflows: WorkflowCommits,
        runs: RunService,
        lineage: RunLineage,
    ) -> None:
        self._uow = uow
        self._cas = cas
        self._workflows = workflows
        self._runs = runs
        self._lineage = lineage

    def commit_output(
        self,
        run_id: str,
        tag: str,
        node: str,
        content: bytes,
        *,
        media_type: str,
        deps: list[str] | tuple[str, ...] = (),
        partition_key: str | None = None,
        code_version: str | None = None,
        job_name: str | None = None,
        publish: PublishMode | str | None = None,
    ) -> OutputCommit:
        """Store ``content`` as ``node``'s value and move ``tag`` (for a ``publish="run"``
        run, its staged head) to a version holding it.

        The run is pinned first (if it is not already), in the same transaction: a value
        that cannot be committed leaves no pin either; ``publish`` is how a new run
        publishes, and a run that publishes otherwise refuses it. A value equal to the
        current one changes nothing (``changed=False``); a lost race is retried on the new
        head.
        The commit is one decision (``core.storage.commit_record``), which the storage
        may write behind. A move the tag's policy refuses is a ``PolicyError``: a
        ``publish="output"`` commit on a protected tag, or on an immutable one that exists.
        """
        check_output(run_id, tag, node, deps, media_type, job_name)
        check_content(content)
        check_partition_key(partition_key)
        mode = check_publish(publish)
        check_text(code_version, "code version", 255)
        if len(content) >= LARGE_VALUE:
            cas_id = self._cas.store_content(content, media_type)  # big: before the lock
            blobs: list[tuple[bytes, str]] = []
        else:  # stored with the new version, when there is one
            cas_id = self._cas.compute_hash(content)
            blobs = [(content, media_type)]
        value = NodeValue(node, partition_key, cas_id, media_type, len(content))
        return self._commit(value, run_id, tag, deps, code_version, job_name, mode, blobs)

    def commit_output_stream(
        self,
        run_id: str,
        tag: str,
        node: str,
        stream: BinaryIO,
        *,
        media_type: str,
        deps: list[str] | tuple[str, ...] = (),
        partition_key: str | None = None,
        code_version: str | None = None,
        job_name: str | None = None,
        publish: PublishMode | str | None = None,
    ) -> OutputCommit:
        """``commit_output`` for a value read from ``stream`` (a binary file-like object of
        any size, read to its end): the bytes go to the blob store in bounded memory before
        the commit's transaction, which then takes the stored blob's cas id."""
        check_output(run_id, tag, node, deps, media_type, job_name)
        check_stream(stream)
        check_partition_key(partition_key)
        mode = check_publish(publish)
        check_text(code_version, "code version", 255)
        cas_id, size = self._cas.store_stream_sized(stream, media_type)
        value = NodeValue(node, partition_key, cas_id, media_type, size)
        return self._commit(value, run_id, tag, deps, code_version, job_name, mode, [])

    def _commit(
        self,
        value: NodeValue,
        run_id: str,
        tag: str,
        deps: list[str] | tuple[str, ...],
        code_version: str | None,
        job_name: str | None,
        mode: PublishMode | None,
        blobs: list[tuple[bytes, str]],
    ) -> OutputCommit:
        """Commit ``value`` (its bytes stored already, or in ``blobs`` to store with the
        new version) as its node's value on ``tag``."""
        node, partition_key = value.node, value.partition_key
        entry = {"cas_id": value.cas_id, "media_type": value.media_type, "size": value.size}
        update = partial(
            with_node_value,
            node_id=node,
            value=entry,
            deps=list(deps),
            partition_key=partition_key,
            code_version=code_version,
        )
        message = f"materialize {node}" + (f" [{partition_key}]" if partition_key else "")

        def commit(uow: UnitOfWork) -> CreateWorkflowResponse:
            # the pin, the value, the new version, the move, the lineage: one decision
            pin = self._runs.pin_in(uow, run_id, tag, job_name=job_name, publish=mode)
            reads = self._lineage.unwritten_reads(run_id)
            response = self._workflows.update_in(
                uow,
                tag,
                update,
                name=job_name or tag,
                created_by=job_name,
                message=message,
                run_id=run_id,
                blobs=blobs,
                run_values=run_values(outputs=[value], inputs=reads),
                stage=pin.publish is PublishMode.RUN,
            )
            self._lineage.written_in(uow, run_id, value, reads)
            return response

        def decided(uow: UnitOfWork) -> CreateWorkflowResponse:
            try:
                return commit(uow)
            except PolicyError as refused:  # a ConflictError, but no race: never retried
                raise _Refused(refused) from None

        try:
            response = self._uow.run(
                decided, lost=ConflictError, attempts=MAX_SWAP_ATTEMPTS, deferred=True
            )
        except _Refused as refused:
            raise refused.error from None
        return OutputCommit(
            value=value,
            tag=tag,
            artifact_id=response.artifact_id,
            version_hash=response.version_hash,
            from_target_id=response.from_target_id,
            revision=response.revision,
            changed=response.changed,
            from_version_hash=response.from_version_hash,
        )

    def commit_step_output(
        self,
        run_id: str,
        tag: str,
        node: str,
        content: bytes,
        *,
        media_type: str,
        job_name: str | None = None,
    ) -> NodeValue:
        """Store the output of an op (a value that is no asset) for its run alone.

        It moves no tag and joins no DAG version: the run's later steps, and re-executions
        of the run, read it back with ``locate_step_output``. ``tag`` is the run's pin.
        """
        check_output(run_id, tag, node, (), media_type, job_name)
        check_content(content)
        cas_id = self._cas.compute_hash(content)
        value = NodeValue(node, None, cas_id, media_type, len(content))
        return self._record_step_output(value, run_id, tag, job_name, [(content, media_type)])

    def commit_step_output_stream(
        self,
        run_id: str,
        tag: str,
        node: str,
        stream: BinaryIO,
        *,
        media_type: str,
        job_name: str | None = None,
    ) -> NodeValue:
        """``commit_step_output`` for a value read from ``stream``, stored in bounded memory
        before the transaction that records it."""
        check_output(run_id, tag, node, (), media_type, job_name)
        check_stream(stream)
        cas_id, size = self._cas.store_stream_sized(stream, media_type)
        value = NodeValue(node, None, cas_id, media_type, size)
        return self._record_step_output(value, run_id, tag, job_name, [])

    def _record_step_output(
        self,
        value: NodeValue,
        run_id: str,
        tag: str,
        job_name: str | None,
        blobs: list[tuple[bytes, str]],
    ) -> NodeValue:
        """Pin the run and record the op output ``value`` (its bytes stored already, or in
        ``blobs`` to store in the same unit of work)."""
        with self._uow() as uow:
            self._runs.pin_in(uow, run_id, tag, job_name=job_name)
            if blobs:
                self._cas.store_in(uow, blobs)
            reads = self._lineage.unwritten_reads(run_id)
            self._runs.record_io_in(uow, run_id, outputs=[value], inputs=reads)
            self._lineage.written_in(uow, run_id, value, reads)
            uow.commit()
        return value
