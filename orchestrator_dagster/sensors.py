"""Sensors over the catalog: runs on tag moves, and run status back into the catalog."""

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from core.identifiers import check_node_id, check_tag_name
from orchestrator_dagster.publishing import FINAL_STATUSES, record_run_end
from orchestrator_dagster.resource import OrchestratorResource

MOVED_TAG_KEY = "orchestrator/tag"
MOVED_VERSION_KEY = "orchestrator/version_hash"
"""Tags of a ``tag_move_sensor`` run: the tag that moved and the version it landed on
(the run is pinned to that version)."""
RUNS_PER_TICK = 100
CURSOR_OVERLAP = timedelta(seconds=1)
"""Runs updated this close to the cursor are looked at again (finishing is idempotent)."""


def tag_move_sensor(
    tag: str,
    target: Any,
    *,
    name: str | None = None,
    asset_keys: Sequence[str | Sequence[str] | dg.AssetKey] | None = None,
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that requests one run of ``target`` per move of ``tag``.

    The cursor is the last move id seen; on its first tick the sensor looks at the latest
    move only. Each run request has ``run_key=f"{tag}:{move_id}"`` and tags naming the
    move and the version it landed on; ``VersionedIOManager`` pins such a run to that
    version, so it builds what the move published. With ``asset_keys``, only moves that
    changed one of those assets' nodes request a run. Needs the ``orchestrator`` resource.

    Examples:
        .. code-block:: python

            import dagster as dg
            from orchestrator_dagster import OrchestratorResource, tag_move_sensor

            @dg.asset
            def published_report() -> str:
                return "ok"

            publish = dg.define_asset_job("publish", selection=[published_report])
            defs = dg.Definitions(
                assets=[published_report],
                jobs=[publish],
                sensors=[tag_move_sensor("main", publish, asset_keys=["sales_report"])],
                resources={"orchestrator": OrchestratorResource()},
            )
    """
    check_tag_name(tag)
    nodes = (
        None
        if asset_keys is None
        else frozenset(
            check_node_id(dg.AssetKey.from_coercible(key).to_user_string(), "in asset_keys")
            for key in asset_keys
        )
    )
    sensor_name = name or re.sub(r"[^A-Za-z0-9_]", "_", tag) + "_tag_move_sensor"

    @dg.sensor(
        name=sensor_name,
        target=target,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=f"Requests a run for every move of tag {tag!r}"
        + (f" that changes {sorted(nodes)}" if nodes else ""),
    )
    def _sensor(
        context: dg.SensorEvaluationContext, orchestrator: OrchestratorResource
    ) -> dg.SensorResult:
        cursor = int(context.cursor) if context.cursor else None
        page = orchestrator.catalog.workflows.get_moves(tag, cursor, nodes=nodes)
        requests = [
            dg.RunRequest(
                run_key=f"{tag}:{item.move.id}",
                tags={
                    MOVED_TAG_KEY: tag,
                    "orchestrator/move_id": str(item.move.id),
                    "orchestrator/revision": str(item.move.revision),
                    MOVED_VERSION_KEY: item.version_hash or "",
                },
            )
            for item in page.moves
        ]
        skip = None if requests else f"no new moves of tag {tag!r}"
        return dg.SensorResult(run_requests=requests, skip_reason=skip, cursor=str(page.cursor))

    return _sensor


def build_run_snapshot_sensor(
    *,
    name: str = "run_snapshot_sensor",
    minimum_interval_seconds: int = 30,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """``run_snapshot_sensor`` with another name, interval or default status."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Records the final status of every run the catalog knows, and publishes "
        'the publish="run" runs that passed.',
    )
    def _sensor(
        context: dg.SensorEvaluationContext, orchestrator: OrchestratorResource
    ) -> dg.SensorResult:
        return _record_finished_runs(context, orchestrator)

    return _sensor


def _record_finished_runs(
    context: dg.SensorEvaluationContext, orchestrator: OrchestratorResource
) -> dg.SensorResult:
    """Marks each finished Dagster run finished in the catalog (success, failure, canceled)
    and audits each ``publish="run"`` run: published when it succeeded with no failed
    ``ERROR`` check, else the reason recorded (``publish_run`` does it for one run).

    The cursor is the update time of the newest finished run seen; it never goes back.
    Runs the catalog never recorded (they touched no versioned output) are skipped.
    """
    cursor = float(context.cursor) if context.cursor else None
    records = _finished_runs_since(context.instance, cursor)
    finished = 0
    for record in records:
        if record_run_end(context.instance, orchestrator, record) is not None:
            finished += 1
    newest = max([cursor or 0.0, *(r.update_timestamp.timestamp() for r in records)])
    skip = None if finished else "no finished runs to record"
    return dg.SensorResult(skip_reason=skip, cursor=str(newest) if records else context.cursor)


run_snapshot_sensor = build_run_snapshot_sensor()
"""Records each finished run's status in the catalog and publishes the ``publish="run"``
runs that passed (every 30 s, running by default); ``build_run_snapshot_sensor`` makes
one with other settings."""


def _finished_runs_since(
    instance: dg.DagsterInstance, cursor: float | None
) -> Sequence[dg.RunRecord]:
    """Finished runs updated after ``cursor`` less the overlap, oldest update first: a
    page of ``RUNS_PER_TICK``, or more when a full page gets no further than the cursor
    (more runs than that finished within the overlap, and would be read again forever)."""
    after = None if cursor is None else datetime.fromtimestamp(cursor, UTC) - CURSOR_OVERLAP
    limit = RUNS_PER_TICK
    while True:
        records = instance.get_run_records(
            filters=dg.RunsFilter(statuses=list(FINAL_STATUSES), updated_after=after),
            order_by="update_timestamp",
            ascending=True,
            limit=limit,
        )
        if len(records) < limit or cursor is None:
            return records
        if records[-1].update_timestamp.timestamp() > cursor:
            return records
        limit *= 2
