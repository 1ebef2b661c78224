"""A run's end, recorded in the catalog: its final status, and for a ``publish="run"``
run the audit with the checks that failed in it (``RunService.end_run``)."""

from datetime import UTC, datetime

import dagster as dg

import core
from orchestrator_dagster.resource import OrchestratorResource

FINAL_STATUSES = {
    dg.DagsterRunStatus.SUCCESS: core.RunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE: core.RunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED: core.RunStatus.CANCELED,
}


def failed_error_checks(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    """The asset checks evaluated in ``run_id`` that failed with severity ``ERROR``, as
    ``asset_key:check_name``."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
    ).records
    failed = set()
    for record in records:
        event = record.event_log_entry.dagster_event
        evaluation = event.event_specific_data if event is not None else None
        if (
            isinstance(evaluation, dg.AssetCheckEvaluation)
            and not evaluation.passed
            and evaluation.severity == dg.AssetCheckSeverity.ERROR
        ):
            failed.add(f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}")
    return sorted(failed)


def record_run_end(
    instance: dg.DagsterInstance, orchestrator: OrchestratorResource, record: dg.RunRecord
) -> core.Run | None:
    """Record the end of the finished Dagster run of ``record`` in the catalog, with the
    checks that failed in it for the audit of a ``publish="run"`` run
    (``RunService.end_run``); the catalog's run, or ``None`` when the catalog never
    recorded it (it touched no versioned output). Repeating it changes nothing."""
    run = record.dagster_run
    ended = datetime.fromtimestamp(record.end_time, UTC) if record.end_time else None
    try:
        return orchestrator.end_run(
            run.run_id,
            FINAL_STATUSES[run.status].value,
            finished_at=ended,
            failed_checks=failed_error_checks(instance, run.run_id),
        )
    except core.NotFoundError:
        return None


def publish_run(
    run_id: str, *, instance: dg.DagsterInstance, orchestrator: OrchestratorResource
) -> core.Run | None:
    """Do for one finished run what ``run_snapshot_sensor`` does when it sees it end:
    record its status and, for a ``publish="run"`` run, publish it if it passed (after
    ``dg.materialize``, in scripts and tests). The catalog's run, with its outcome."""
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=[run_id]), limit=1)
    if not records:
        raise core.NotFoundError(f"Dagster knows no run {run_id!r}")
    if records[0].dagster_run.status not in FINAL_STATUSES:
        raise core.ValidationError(
            f"run {run_id!r} has not finished ({records[0].dagster_run.status.value})"
        )
    return record_run_end(instance, orchestrator, records[0])
