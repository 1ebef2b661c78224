"""What a pipeline's step asks of the catalog: pin its run, commit its outputs, find and
read its inputs. ``AssetService`` answers it in the step's own process;
``core.client.ServedSteps`` answers it over HTTP from a served catalog."""

from typing import BinaryIO, Protocol

from core.domain import NodeValue, OutputCommit, PublishMode


class StepCatalog(Protocol):
    """The calls of ``VersionedIOManager``; each means what ``AssetService``'s does."""

    def pin(
        self,
        run_id: str,
        tag: str = "main",
        *,
        job_name: str | None = None,
        at_version: str | None = None,
        publish: PublishMode | str | None = None,
        parent_run_id: str | None = None,
    ) -> object: ...

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
    ) -> OutputCommit: ...

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
    ) -> OutputCommit: ...

    def commit_step_output(
        self,
        run_id: str,
        tag: str,
        node: str,
        content: bytes,
        *,
        media_type: str,
        job_name: str | None = None,
    ) -> NodeValue: ...

    def commit_step_output_stream(
        self,
        run_id: str,
        tag: str,
        node: str,
        stream: BinaryIO,
        *,
        media_type: str,
        job_name: str | None = None,
    ) -> NodeValue: ...

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
    ) -> NodeValue: ...

    def locate_step_output(
        self, run_id: str | None, tag: str, producer: str, node: str
    ) -> NodeValue: ...

    def read(self, value: NodeValue) -> bytes: ...

    def open(self, value: NodeValue) -> BinaryIO: ...

    def flush_reads(self, run_id: str) -> object: ...
