"""The versioned IO manager: outputs go to CAS as versions of the pipeline's DAG."""

import collections.abc
import typing
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

import core
from core.identifiers import check_publish
from orchestrator_dagster import codecs, frames
from orchestrator_dagster.codecs import JSON_MEDIA_TYPE, StreamCodec, default_registry
from orchestrator_dagster.data_version import set_content_data_version
from orchestrator_dagster.frame_metadata import frame_metadata
from orchestrator_dagster.resource import OrchestratorResource
from orchestrator_dagster.sensors import MOVED_TAG_KEY, MOVED_VERSION_KEY

PUBLISH_TAG_KEY = "orchestrator/publish"
"""A run tag (``"output"`` or ``"run"``) that chooses how the run publishes, over the IO
manager's own ``publish``: ``define_asset_job(..., tags={PUBLISH_TAG_KEY: "run"})``."""

PIN_TAG_KEY = "orchestrator/tag"
PIN_VERSION_KEY = "orchestrator/version"
PREVIEW_LIMIT = 2048
"""JSON values up to this many bytes get a preview in the materialisation's metadata."""


def node_id(context: dg.OutputContext | dg.InputContext) -> str:
    """The node of an output: its asset key (``sales/orders``), else the op output's
    ``step.output`` (``emit.result[a]`` for a dynamic output mapped to ``a``)."""
    if context.has_asset_key:
        return context.asset_key.to_user_string()
    output = context if isinstance(context, dg.OutputContext) else context.upstream_output
    assert output is not None, "an input without an asset key always has an upstream output"
    if output.has_asset_key:  # e.g. a result loading an asset's value for ``output_for_node``
        return output.asset_key.to_user_string()
    node = f"{output.step_key}.{output.name}"
    return f"{node}[{output.mapping_key}]" if output.mapping_key else node


def _is_op_output(context: dg.OutputContext | dg.InputContext) -> bool:
    """Whether the value is an op's output (no asset): kept for its run, not on the tag."""
    if isinstance(context, dg.OutputContext):
        return not context.has_asset_key
    upstream = context.upstream_output
    return not context.has_asset_key and upstream is not None and not upstream.has_asset_key


def _job_name(name: str | None) -> str | None:
    """The job to record: none for the jobs Dagster names itself (``__ASSET_JOB`` when
    assets are materialised from the UI, ``__ephemeral_asset_job__`` for ``materialize``),
    whose names tell a reader of the catalog nothing."""
    return None if name is None or name.startswith("__") else name


def _pins(context: dg.InputContext) -> Mapping[str, Any]:
    """The metadata holding the input's pin: the input's own (``AssetIn``), else the
    upstream asset's definition (a ``SourceAsset`` or ``AssetSpec`` pinned to a tag)."""
    upstream = context.upstream_output
    for metadata in (context.definition_metadata, upstream and upstream.definition_metadata):
        if metadata and (PIN_TAG_KEY in metadata or PIN_VERSION_KEY in metadata):
            return metadata
    return {}


def _producer(context: dg.InputContext) -> str | None:
    """The run that produced the input's value: this run, or the run a re-execution
    re-executes for a step it did not run again (``None`` outside a real run)."""
    try:
        return context.upstream_output.run_id if context.upstream_output else None
    except dg.DagsterInvariantViolationError:  # unit-test contexts have no run id
        return None


def _annotation(context: dg.InputContext) -> Any:
    """The type the input is annotated with (``typing.Any`` when it is not)."""
    dagster_type = context.dagster_type
    return getattr(dagster_type, "typing_type", Any) if dagster_type is not None else Any


def _value_annotation(annotation: Any) -> Any:
    """The type of each value of a ``dict[str, T]`` (or ``Mapping``) annotation, else ``Any``."""
    if typing.get_origin(annotation) in (dict, collections.abc.Mapping):
        args = typing.get_args(annotation)
        return args[1] if len(args) == 2 else Any
    return Any


def _current_run_id(context: dg.InputContext) -> str | None:
    """The id of the run loading this input (``None`` outside a real run)."""
    try:
        return context.step_context.run_id
    except Exception:  # unit-test contexts have no step context
        return None


class VersionedIOManager(dg.ConfigurableIOManager):
    """Stores every output in CAS and moves a tag to a DAG version that holds it.

    Each run is pinned to the tag's version when its first step starts; inputs the run
    did not produce itself are read from that pin, so a run reads consistent values
    while other runs move the tag. Pin an input to another tag or version with
    ``AssetIn(metadata={"orchestrator/tag": "prod"})`` or
    ``{"orchestrator/version": "sha256:..."}``.

    Examples:
        .. code-block:: python

            import dagster as dg
            from orchestrator_dagster import OrchestratorResource, VersionedIOManager

            orchestrator = OrchestratorResource()  # DuckDB file + local blobs by default

            @dg.asset
            def orders() -> list[dict]:
                return [{"id": 1, "amount": 12.5}]

            @dg.asset
            def revenue(orders: list[dict]) -> float:
                return sum(order["amount"] for order in orders)

            defs = dg.Definitions(
                assets=[orders, revenue],
                resources={
                    "orchestrator": orchestrator,
                    "io_manager": VersionedIOManager(orchestrator=orchestrator, tag="main"),
                },
            )
    """

    orchestrator: OrchestratorResource
    tag: str = Field(default="main", description="The tag that materialisations move.")
    publish: str = Field(
        default="output",
        description='"output": each materialisation moves the tag as it finishes; "run": '
        "a run's outputs stage on its own head and land on the tag together, once the run "
        "and its checks pass (run_snapshot_sensor or publish_run publishes it). A run tag "
        f"{PUBLISH_TAG_KEY!r} (a job's tags) chooses for its run instead.",
    )

    _mode: core.PublishMode | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Pin the run to the tag's current version (the first step process to get here
        wins), or to the version a ``tag_move_sensor`` run request names; a re-execution
        of a ``publish="run"`` run continues from its parent's staged head."""
        self._mode = check_publish(self.publish)
        run = context.run
        if run is not None:
            self._mode = check_publish(run.tags.get(PUBLISH_TAG_KEY) or self.publish)
            moved = run.tags.get(MOVED_TAG_KEY) == self.tag
            self.orchestrator.steps.pin(
                run.run_id,
                self.tag,
                job_name=_job_name(run.job_name),
                at_version=(run.tags.get(MOVED_VERSION_KEY) or None) if moved else None,
                publish=self._mode,
                parent_run_id=run.parent_run_id,
            )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Write the reads of this run's steps that no output commit has carried."""
        if context.run is not None:
            self.orchestrator.steps.flush_reads(context.run.run_id)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        node = node_id(context)
        assets = self.orchestrator.steps
        codec = default_registry.codec_for(obj)
        op_output = _is_op_output(context)
        what = f"the output {node!r}" if op_output else f"the output of asset {node!r}"
        if isinstance(codec, StreamCodec):
            obj = codec.prepare(obj)
        if op_output:
            step: dict[str, Any] = {
                "media_type": codec.media_type,
                "job_name": _job_name(context.job_name),
            }
            if isinstance(codec, StreamCodec):
                with codecs.written(codec, obj, what=what) as stream:
                    value = assets.commit_step_output_stream(
                        context.run_id, self.tag, node, stream, **step
                    )
            else:
                data, _ = default_registry.encode(obj, what=what)
                value = assets.commit_step_output(context.run_id, self.tag, node, data, **step)
            context.add_output_metadata({**_value_metadata(value, obj), **_shown(obj)})
            return
        output: dict[str, Any] = {
            "media_type": codec.media_type,
            "deps": self._deps(context),
            "partition_key": self._partition(context),
            "code_version": context.asset_spec.code_version,
            "job_name": _job_name(context.job_name),
            "publish": self._mode or check_publish(self.publish),
        }
        if isinstance(codec, StreamCodec):
            with codecs.written(codec, obj, what=what) as stream:
                commit = assets.commit_output_stream(
                    context.run_id, self.tag, node, stream, **output
                )
        else:
            data, _ = default_registry.encode(obj, what=what)
            commit = assets.commit_output(context.run_id, self.tag, node, data, **output)
        context.add_output_metadata({**self._metadata(commit, obj), **_shown(obj)})
        set_content_data_version(context, commit.value.cas_id)

    def load_input(self, context: dg.InputContext) -> Any:
        """The stored value, as the type the input is annotated with where a codec can
        (a DataFrame as the annotated frame type); several partitions load as a dict of
        partition key to value, or as one frame when annotated with a frame type."""
        node = node_id(context)
        annotation = _annotation(context)
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        if len(keys) == 1:
            return self._load(context, node, keys[0], annotation)
        if frames.kind_of_type(annotation) is not None:
            parts = [self._load(context, node, key, annotation) for key in keys]
            return frames.concat(parts, annotation)
        each = _value_annotation(annotation)
        return {key: self._load(context, node, key, each) for key in keys}

    def _load(
        self, context: dg.InputContext, node: str, partition_key: str | None, annotation: Any
    ) -> Any:
        assets = self.orchestrator.steps
        run_id = _current_run_id(context)
        if _is_op_output(context):  # on no tag: a pin has nothing to name
            producer = _producer(context) or run_id
            if producer is None:
                raise core.ValidationError(f"the output {node!r} is read outside a run")
            value = assets.locate_step_output(run_id, self.tag, producer, node)
            what = f"the output {node!r} ({value.cas_id})"
        else:
            pins = _pins(context)
            value = assets.locate_input(
                run_id,
                self.tag,
                node,
                partition_key=partition_key,
                pin_tag=pins.get(PIN_TAG_KEY),
                pin_version=pins.get(PIN_VERSION_KEY),
                producer=_producer(context),
            )
            what = f"asset {node!r} ({value.cas_id})"
        codec = default_registry.codec_of(value.media_type, what=what)
        if isinstance(codec, StreamCodec):
            with assets.open(value) as handle:
                return codecs.read(codec, handle, annotation, what=what)
        decoded = default_registry.decode(assets.read(value), value.media_type, what=what)
        return frames.as_annotated(decoded, annotation)  # a frame an older codec pickled

    @staticmethod
    def _deps(context: dg.OutputContext) -> list[str]:
        return sorted(dep.asset_key.to_user_string() for dep in context.asset_spec.deps)

    @staticmethod
    def _partition(context: dg.OutputContext) -> str | None:
        if not context.has_asset_partitions:
            return None
        keys = context.asset_partition_keys
        if len(keys) != 1:
            raise core.ValidationError(
                f"VersionedIOManager stores one partition per output; asset "
                f"{node_id(context)!r} produced {len(keys)} partitions in one step: give it "
                "backfill_policy=BackfillPolicy.multi_run(1) to run one partition a step"
            )
        return keys[0]

    def _metadata(self, commit: core.OutputCommit, obj: Any) -> dict[str, Any]:
        return {
            "orchestrator/cas_id": commit.value.cas_id,
            "orchestrator/version_hash": dg.MetadataValue.text(commit.version_hash),
            "orchestrator/tag": commit.tag,
            "orchestrator/from": dg.MetadataValue.text(commit.from_version_hash or ""),
            "orchestrator/to": dg.MetadataValue.text(commit.version_hash),
            "orchestrator/revision": commit.revision,
            "orchestrator/unchanged": not commit.changed,
            "orchestrator/publish": str(self._mode or self.publish),
            **_value_metadata(commit.value, obj),
        }


def _shown(obj: Any) -> dict[str, Any]:
    """What the UI shows of a frame (``frame_metadata``), once it is written: a frame its
    writer refuses fails with the writer's ``CodecError`` naming the output, not here."""
    return frame_metadata(obj) if isinstance(obj, frames.Frame) else {}


def _value_metadata(value: core.NodeValue, obj: Any) -> dict[str, Any]:
    """What the UI shows of any stored value: where, how big, which type, a preview."""
    metadata: dict[str, Any] = {
        "orchestrator/cas_id": value.cas_id,
        "orchestrator/size": dg.MetadataValue.int(value.size),
        "orchestrator/media_type": value.media_type,
    }
    if value.partition_key is not None:
        metadata["orchestrator/partition"] = value.partition_key
    if value.media_type == JSON_MEDIA_TYPE and value.size <= PREVIEW_LIMIT:
        metadata["orchestrator/preview"] = dg.MetadataValue.json(
            obj if isinstance(obj, dict | list) else {"value": obj}
        )
    return metadata
