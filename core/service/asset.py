"""Asset values: commit a pipeline's outputs to a tag and find the values its inputs read.

This is the decision layer behind the Dagster IO manager: the adapter only encodes and
decodes Python values.
"""

import threading
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from core.dag import node_value, with_node_value
from core.domain import CreateWorkflowResponse, NodeValue, OutputCommit
from core.errors import ConflictError, NotDeferrable, NotFoundError, ValidationError
from core.identifiers import (
    check_content,
    check_job_name,
    check_media_type,
    check_node_id,
    check_partition_key,
    check_run_id,
    check_tag_name,
    check_text,
)
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact import ArtifactService
from core.service.cas import CasService
from core.service.run import RunService
from core.service.tag import MAX_SWAP_ATTEMPTS
from core.service.workflow import WorkflowService
from core.storage.committed_cache import CommittedCache
from core.storage.uow import UnitOfWorkFactory

LARGE_VALUE = 1 << 20
"""Values at least this big are written to the blob store before the commit's transaction."""
T = TypeVar("T")
OWN_OUTPUTS_CACHE_SIZE = 4096
"""Values this process committed for its runs, kept to answer their downstream reads."""


def _check_output(
    run_id: object,
    tag: object,
    node: object,
    deps: object,
    content: object,
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
    check_content(content)
    check_media_type(media_type)
    check_job_name(job_name)


def _as_value(node: str, partition_key: str | None, entry: dict[str, Any]) -> NodeValue:
    return NodeValue(node, partition_key, entry["cas_id"], entry["media_type"], entry["size"])


class _PendingReads:
    """Reads of each run not written yet, one per node and partition (the latest wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[str, dict[tuple[str, str | None], NodeValue]] = {}

    def add(self, run_id: str, value: NodeValue) -> None:
        with self._lock:
            self._runs.setdefault(run_id, {})[(value.node, value.partition_key)] = value

    def of(self, run_id: str) -> list[NodeValue]:
        with self._lock:
            return list(self._runs.get(run_id, {}).values())

    def run_ids(self) -> list[str]:
        with self._lock:
            return list(self._runs)

    def written(self, run_id: str, values: list[NodeValue]) -> None:
        """Forget ``values`` (now committed) unless a newer read replaced them meanwhile."""
        with self._lock:
            pending = self._runs.get(run_id, {})
            for value in values:
                key = (value.node, value.partition_key)
                if pending.get(key) is value:
                    del pending[key]
            if not pending:
                self._runs.pop(run_id, None)


class AssetService:
    """Each output becomes the node's value on the tag; each run reads a pinned snapshot.

    A run's reads are kept in this process and written with the next output it commits
    for the run, or by ``flush_reads`` (the IO manager flushes when a step process or an
    in-process run ends); a process killed before either loses its reads, never an
    output. A run's own outputs are answered from memory in the process that committed
    them (a run writes each output from one step, in one process).
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        cas: CasService,
        artifacts: ArtifactService,
        workflows: WorkflowService,
        runs: RunService,
    ) -> None:
        self._uow = uow
        self._cas = cas
        self._artifacts = artifacts
        self._workflows = workflows
        self._runs = runs
        self._own_outputs = CommittedCache[tuple[str, str, str | None], NodeValue](
            uow, OWN_OUTPUTS_CACHE_SIZE
        )
        self._reads = _PendingReads()

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
    ) -> OutputCommit:
        """Store ``content`` as ``node``'s value and move ``tag`` to a version holding it.

        The run is pinned first (if it is not already), in the same transaction: a value
        that cannot be committed leaves no pin either. A value equal to the tag's current
        one changes nothing (``changed=False``); a lost race is retried on the new head.
        """
        _check_output(run_id, tag, node, deps, content, media_type, job_name)
        check_partition_key(partition_key)
        check_text(code_version, "code version", 255)
        if len(content) >= LARGE_VALUE:
            cas_id = self._cas.store_content(content, media_type)  # big: before the lock
            blobs: list[tuple[bytes, str]] = []
        else:  # stored with the new version, when there is one
            cas_id = self._cas.compute_hash(content)
            blobs = [(content, media_type)]
        value = NodeValue(node, partition_key, cas_id, media_type, len(content))
        entry = {"cas_id": cas_id, "media_type": media_type, "size": len(content)}
        update = partial(
            with_node_value,
            node_id=node,
            value=entry,
            deps=list(deps),
            partition_key=partition_key,
            code_version=code_version,
        )
        message = f"materialize {node}" + (f" [{partition_key}]" if partition_key else "")
        # Inside a caller's transaction nothing is final yet, and a lost race cannot be
        # rolled back here: the ConflictError goes to the caller, which retries the whole.
        attempts = 1 if self._uow.nested else MAX_SWAP_ATTEMPTS

        def commit() -> tuple[CreateWorkflowResponse, list[NodeValue]]:
            # the pin, the value, the new version, the move, the lineage: all or nothing
            self._runs.pin(run_id, tag, job_name=job_name)
            response = self._workflows.update_workflow(
                tag,
                update,
                name=job_name or tag,
                created_by=job_name,
                message=message,
                run_id=run_id,
                blobs=blobs,
            )
            if blobs and not response.changed:  # stored already, unless its file is gone
                self._cas.store_if_missing(cas_id, content, media_type)
            reads = self._reads.of(run_id)
            self._runs.record_io(run_id, outputs=[value], inputs=reads)
            return response, reads

        for attempt in range(1, attempts + 1):
            try:
                response, reads = self._deferred_if_possible(commit)
                break
            except ConflictError:
                if attempt == attempts:
                    raise
        self._committed(run_id, value, reads)
        return OutputCommit(
            value=value,
            tag=tag,
            artifact_id=response.artifact_id,
            version_hash=response.version_hash,
            from_target_id=response.from_target_id,
            revision=response.revision,
            changed=response.changed,
        )

    def _deferred_if_possible(self, work: Callable[[], T]) -> T:
        """``work`` in a deferred transaction (journaled: see ``core.storage.db``), or in an
        ordinary one when it cannot be deferred (its first pin of a run, say)."""
        try:
            with self._uow(deferred=True):
                return work()
        except NotDeferrable:
            with self._uow():
                return work()

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
        _check_output(run_id, tag, node, (), content, media_type, job_name)
        with self._uow():
            self._runs.pin(run_id, tag, job_name=job_name)
            cas_id = self._cas.store_content(content, media_type)
            value = NodeValue(node, None, cas_id, media_type, len(content))
            reads = self._reads.of(run_id)
            self._runs.record_io(run_id, outputs=[value], inputs=reads)
        self._committed(run_id, value, reads)
        return value

    def locate_step_output(
        self, run_id: str | None, tag: str, producer: str, node: str
    ) -> NodeValue:
        """Where the op output ``node`` of run ``producer`` is stored (the run itself, or
        the run it re-executes); the read is noted for ``run_id``."""
        check_node_id(node)
        check_run_id(producer)
        if run_id is not None:
            self._runs.pin(run_id, tag)
        value = self._output_of(producer, node, None)
        if value is None:
            raise NotFoundError(f"output {node!r} of run {producer!r} has no stored value")
        if run_id is not None:
            self._reads.add(run_id, value)
        return value

    def locate_input(
        self,
        run_id: str | None,
        tag: str,
        node: str,
        *,
        partition_key: str | None = None,
        pin_tag: str | None = None,
        pin_version: str | None = None,
        producer: str | None = None,
    ) -> NodeValue:
        """Where the value ``node`` reads is stored; the read is noted for the run.

        An explicit pin wins (``pin_version``, a version hash, or ``pin_tag``); otherwise
        the value this run produced, or that run ``producer`` did (the run a re-execution
        re-executes); otherwise the value in the run's pinned snapshot (or, with no run,
        on the tag now).
        """
        check_node_id(node)
        check_tag_name(tag)
        if producer is not None:
            check_run_id(producer)
        if run_id is None:
            with self._uow():
                return self._locate(run_id, tag, node, partition_key, pin_tag, pin_version)
        self._runs.pin(run_id, tag)  # the run's first touch pins it, in its own transaction
        value = None
        if pin_tag is None and pin_version is None:
            value = self._own_outputs.get((run_id, node, partition_key))
            if value is None and producer not in (None, run_id):  # a step not re-executed
                value = self._output_of(producer, node, partition_key)
        if value is None:
            with self._uow():
                value = self._locate(run_id, tag, node, partition_key, pin_tag, pin_version)
        self._reads.add(run_id, value)
        return value

    def flush_reads(self, run_id: str | None = None) -> int:
        """Write the reads noted for ``run_id`` (default: every run) that are not written
        yet; returns how many were written. Inside a caller's transaction they stay noted
        until a flush of their own commits."""
        written = 0
        for run in [run_id] if run_id is not None else self._reads.run_ids():
            reads = self._reads.of(run)
            if reads:
                with self._uow():
                    self._runs.record_io(run, inputs=reads)
                self._uow.after_commit(partial(self._reads.written, run, reads))
                written += len(reads)
        return written

    def _output_of(self, run_id: str, node: str, partition_key: str | None) -> NodeValue | None:
        """The value ``run_id`` produced for ``node``: from memory if this process
        committed it, else from the catalog."""
        return self._own_outputs.get((run_id, node, partition_key)) or self._runs.get_output(
            run_id, node, partition_key
        )

    def _committed(self, run_id: str, value: NodeValue, reads: list[NodeValue]) -> None:
        """After ``value`` and ``reads`` were written for ``run_id``: remember the value
        for the run's downstream reads and forget the reads, once the transaction
        (a caller's, if there is one) commits."""
        self._own_outputs.put((run_id, value.node, value.partition_key), value)
        self._uow.after_commit(partial(self._reads.written, run_id, reads))

    def _locate(
        self,
        run_id: str | None,
        tag: str,
        node: str,
        partition_key: str | None,
        pin_tag: str | None,
        pin_version: str | None,
    ) -> NodeValue:
        if pin_version is not None:
            artifact = self._artifacts.get_by_version_hash(pin_version)
            value = self._in(self._artifacts.resolve(artifact.id), node, partition_key)
            where = f"version {pin_version}"
        elif pin_tag is not None:
            value = self._in(self._workflows.get_workflow_by_tag(pin_tag), node, partition_key)
            where = f"tag {pin_tag!r}"
        elif run_id is None:
            value = self._in(self._workflows.get_workflow_by_tag(tag), node, partition_key)
            where = f"tag {tag!r}"
        else:
            value = self._runs.get_output(run_id, node, partition_key) or self._pinned(
                run_id, tag, node, partition_key
            )
            where = f"tag {tag!r} as pinned by run {run_id!r}"
        if value is None:
            part = f" partition {partition_key!r}" if partition_key is not None else ""
            raise NotFoundError(f"asset {node!r}{part} has no stored value on {where}")
        return value

    def read(self, value: NodeValue) -> bytes:
        """The bytes of ``value``, verified against its cas id."""
        return self._cas.get_content(value.cas_id)

    def _pinned(
        self, run_id: str, tag: str, node: str, partition_key: str | None
    ) -> NodeValue | None:
        snapshot_id, base_id = self._runs.pin(run_id, tag)
        if base_id is None:
            return None
        return self._in(self._artifacts.resolve(snapshot_id), node, partition_key)

    def _in(
        self, document: dict[str, Any], node: str, partition_key: str | None
    ) -> NodeValue | None:
        entry = node_value(document, node, partition_key)
        if entry is None:
            return None
        if "media_type" not in entry or "size" not in entry:  # a document written by hand
            blob = self._cas.get_blob(entry["cas_id"])
            assert blob is not None
            entry = {"media_type": blob.media_type, "size": blob.size, **entry}
        return _as_value(node, partition_key, entry)
