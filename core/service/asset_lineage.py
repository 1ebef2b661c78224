"""What runs read and wrote, as this process knows it before and after it is written."""

import threading
from functools import partial

from core.domain import NodeValue
from core.repository.unit_of_work import UnitOfWork
from core.service.run import RunService
from core.storage.committed_cache import CommittedCache
from core.storage.uow import UnitOfWorkFactory

OWN_OUTPUTS_CACHE_SIZE = 4096
"""Values this process committed for its runs, kept to answer their downstream reads."""


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


class RunLineage:
    """A run's reads are kept in this process and written with the next output it commits
    for the run, or by ``flush_reads``; a process killed before either loses its reads,
    never an output. A run's own outputs are answered from memory in the process that
    committed them (a run writes each output from one step, in one process)."""

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork], runs: RunService) -> None:
        self._uow = uow
        self._runs = runs
        self._own_outputs = CommittedCache[tuple[str, str, str | None], NodeValue](
            OWN_OUTPUTS_CACHE_SIZE
        )
        self._reads = _PendingReads()

    def note_read(self, run_id: str, value: NodeValue) -> None:
        self._reads.add(run_id, value)

    def unwritten_reads(self, run_id: str) -> list[NodeValue]:
        return self._reads.of(run_id)

    def own_output(self, run_id: str, node: str, partition_key: str | None) -> NodeValue | None:
        """The value this process committed for ``run_id``'s ``node``, if it remembers one."""
        return self._own_outputs.get((run_id, node, partition_key))

    def output_of(self, run_id: str, node: str, partition_key: str | None) -> NodeValue | None:
        """The value ``run_id`` produced for ``node``: from memory if this process
        committed it, else from the catalog."""
        return self.own_output(run_id, node, partition_key) or self._runs.get_output(
            run_id, node, partition_key
        )

    def written_in(
        self, uow: UnitOfWork, run_id: str, value: NodeValue, reads: list[NodeValue]
    ) -> None:
        """A step, once ``value`` and ``reads`` were written for ``run_id`` in ``uow``:
        remember the value for the run's downstream reads and forget the reads, once
        ``uow`` commits."""
        self._own_outputs.put((run_id, value.node, value.partition_key), value, uow)
        uow.after_commit(partial(self._reads.written, run_id, reads))

    def flush_reads(self, run_id: str | None = None) -> int:
        """Write the reads noted for ``run_id`` (default: every run) that are not written
        yet; returns how many were written. Inside a caller's transaction they stay noted
        until a flush of their own commits."""
        written = 0
        for run in [run_id] if run_id is not None else self._reads.run_ids():
            reads = self._reads.of(run)
            if reads:
                with self._uow() as uow:
                    self._runs.record_io_in(uow, run, inputs=reads)
                    uow.after_commit(partial(self._reads.written, run, reads))
                    uow.commit()
                written += len(reads)
        return written
