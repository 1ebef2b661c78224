"""HTTP handler for a run's steps: pin the run, commit outputs, locate inputs, flush reads
(what ``VersionedIOManager`` asks of a served catalog)."""

from typing import Any, BinaryIO

import core
from core.handlers.schemas import (
    InputQuery,
    NodeValueOut,
    OpOutputCommitQuery,
    OpOutputQuery,
    OutputCommitOut,
    OutputQuery,
    PinIn,
    PinOut,
)


class StepHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._assets = catalog.assets

    def pin(self, body: PinIn) -> PinOut:
        snapshot_id, base_id = self._assets.pin(
            body.run_id,
            body.tag,
            job_name=body.job_name,
            at_version=body.at_version,
            publish=body.publish,
            parent_run_id=body.parent_run_id,
        )
        return PinOut(run_id=body.run_id, snapshot_id=snapshot_id, base_id=base_id)

    def commit_output(self, query: OutputQuery, content: bytes | BinaryIO) -> OutputCommitOut:
        """Small values are committed from memory (stored with their version), large ones
        from the spooled body (stored before the commit's transaction)."""
        where = (query.run_id, query.tag, query.node)
        options: dict[str, Any] = {
            "media_type": query.media_type,
            "deps": query.deps,
            "partition_key": query.partition_key,
            "code_version": query.code_version,
            "job_name": query.job_name,
            "publish": query.publish,
        }
        if isinstance(content, bytes):
            return OutputCommitOut.of(self._assets.commit_output(*where, content, **options))
        return OutputCommitOut.of(self._assets.commit_output_stream(*where, content, **options))

    def commit_op_output(
        self, query: OpOutputCommitQuery, content: bytes | BinaryIO
    ) -> NodeValueOut:
        where = (query.run_id, query.tag, query.node)
        options: dict[str, Any] = {"media_type": query.media_type, "job_name": query.job_name}
        if isinstance(content, bytes):
            return NodeValueOut.of(self._assets.commit_step_output(*where, content, **options))
        return NodeValueOut.of(self._assets.commit_step_output_stream(*where, content, **options))

    def locate_input(self, query: InputQuery) -> NodeValueOut:
        return NodeValueOut.of(
            self._assets.locate_input(
                query.run_id,
                query.tag,
                query.node,
                partition_key=query.partition_key,
                pin_tag=query.pin_tag,
                pin_version=query.pin_version,
                producer=query.producer,
            )
        )

    def locate_op_output(self, query: OpOutputQuery) -> NodeValueOut:
        return NodeValueOut.of(
            self._assets.locate_step_output(query.run_id, query.tag, query.producer, query.node)
        )

    def flush_reads(self, run_id: str) -> None:
        self._assets.flush_reads(run_id)
