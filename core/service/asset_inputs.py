"""Input location: where the value an asset or op reads is stored, as of its run's pin."""

import uuid
from typing import Any, BinaryIO

from core.dag import node_value
from core.domain import Artifact, NodeValue
from core.errors import NotFoundError
from core.identifiers import check_node_id, check_pin_ref, check_run_id, check_tag_name
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.service.asset_lineage import RunLineage
from core.service.cas import CasService
from core.service.ref import RefService
from core.service.run import RunService
from core.service.workflow_moves import WorkflowMoves
from core.storage.committed_cache import CommittedCache
from core.storage.uow import UnitOfWorkFactory

REF_PIN_CACHE_SIZE = 4096
"""Runs' ref pins this process remembers (a pin never changes)."""


class AssetInputs:
    """Each run reads a pinned snapshot; every read is noted for the run's lineage."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        cas: CasService,
        artifacts: ArtifactResolution,
        workflows: WorkflowMoves,
        runs: RunService,
        lineage: RunLineage,
        refs: RefService,
    ) -> None:
        self._uow = uow
        self._cas = cas
        self._artifacts = artifacts
        self._workflows = workflows
        self._runs = runs
        self._lineage = lineage
        self._refs = refs
        self._ref_pins = CommittedCache[tuple[str, str], uuid.UUID](REF_PIN_CACHE_SIZE)

    def locate_step_output(
        self, run_id: str | None, tag: str, producer: str, node: str
    ) -> NodeValue:
        """Where the op output ``node`` of run ``producer`` is stored (the run itself, or
        the run it re-executes); the read is noted for ``run_id``."""
        check_node_id(node)
        check_run_id(producer)
        if run_id is not None:
            self._runs.pin(run_id, tag)
        value = self._lineage.output_of(producer, node, None)
        if value is None:
            raise NotFoundError(f"output {node!r} of run {producer!r} has no stored value")
        if run_id is not None:
            self._lineage.note_read(run_id, value)
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

        An explicit pin wins (``pin_version``, any ref, or ``pin_tag``, a tag), resolved
        once per run and recorded (``TAG@{run:<run id>}``); otherwise
        the value this run produced, or that run ``producer`` did (the run a re-execution
        re-executes); otherwise the value in the run's pinned snapshot (or, with no run,
        on the tag now).
        """
        check_node_id(node)
        check_tag_name(tag)
        check_pin_ref(pin_version)
        if producer is not None:
            check_run_id(producer)
        if run_id is not None:
            self._runs.pin(run_id, tag)  # the run's first touch pins it, in its own transaction
        value = None
        if run_id is not None and pin_tag is None and pin_version is None:
            value = self._lineage.own_output(run_id, node, partition_key)
            if value is None and producer not in (None, run_id):  # a step not re-executed
                value = self._lineage.output_of(producer, node, partition_key)
        if value is None:
            with self._uow() as uow:
                value = self._locate(uow, run_id, tag, node, partition_key, pin_tag, pin_version)
                uow.commit()
        if run_id is not None:
            self._lineage.note_read(run_id, value)
        return value

    def read(self, value: NodeValue) -> bytes:
        """The bytes of ``value``, verified against its cas id."""
        return self._cas.get_content(value.cas_id)

    def open(self, value: NodeValue) -> BinaryIO:
        """The stored file of ``value``, verified against its cas id in bounded memory and
        open at its start (``read`` for values too big to hold twice); the caller closes it."""
        return self._cas.open_content(value.cas_id)

    def _locate(
        self,
        uow: UnitOfWork,
        run_id: str | None,
        tag: str,
        node: str,
        partition_key: str | None,
        pin_tag: str | None,
        pin_version: str | None,
    ) -> NodeValue:
        if pin_version is not None or pin_tag is not None:
            ref = pin_version if pin_version is not None else check_tag_name(pin_tag)
            artifact = self._pinned_ref(uow, run_id, ref)
            value = self._in(uow, self._artifacts.resolve_in(uow, artifact.id), node, partition_key)
            where = f"{ref!r} ({artifact.version_hash})"
        elif run_id is None:
            value = self._in(uow, self._workflows.document_in(uow, tag), node, partition_key)
            where = f"tag {tag!r}"
        else:
            value = self._runs.get_output_in(uow, run_id, node, partition_key) or self._pinned(
                uow, run_id, tag, node, partition_key
            )
            where = f"tag {tag!r} as pinned by run {run_id!r}"
        if value is None:
            part = f" partition {partition_key!r}" if partition_key is not None else ""
            raise NotFoundError(f"asset {node!r}{part} has no stored value on {where}")
        return value

    def _pinned_ref(self, uow: UnitOfWork, run_id: str | None, ref: str) -> Artifact:
        """The version ``ref`` names for run ``run_id``: resolved on the run's first read
        through it and pinned, so the run reads one version however the ref moves."""
        if run_id is None:
            return self._refs.resolve_in(uow, ref)
        pinned = self._ref_pins.get((run_id, ref), uow) or uow.runs.pinned(run_id, ref)
        if pinned is None:
            resolved = self._refs.resolve_in(uow, ref)
            pinned = uow.runs.pin_ref(run_id, ref, resolved.id)
            if pinned == resolved.id:
                self._ref_pins.put((run_id, ref), pinned, uow)
                return resolved
        self._ref_pins.put((run_id, ref), pinned, uow)
        return self._artifacts.get_in(uow, pinned)

    def _pinned(
        self, uow: UnitOfWork, run_id: str, tag: str, node: str, partition_key: str | None
    ) -> NodeValue | None:
        pin = self._runs.pin_in(uow, run_id, tag)
        if pin.base_id is None:
            return None
        return self._in(uow, self._artifacts.resolve_in(uow, pin.snapshot_id), node, partition_key)

    def _in(
        self, uow: UnitOfWork, document: dict[str, Any], node: str, partition_key: str | None
    ) -> NodeValue | None:
        entry = node_value(document, node, partition_key)
        if entry is None:
            return None
        if "media_type" not in entry or "size" not in entry:  # a document written by hand
            blob = self._cas.blob_in(uow, entry["cas_id"])
            entry = {"media_type": blob.media_type, "size": blob.size, **entry}
        return NodeValue(node, partition_key, entry["cas_id"], entry["media_type"], entry["size"])
