"""HTTP handlers for runs: create (pin a snapshot), read, finish, end (finish and audit),
publish."""

from fastapi import Response

import core
from core.handlers.schemas import (
    CreateRunIn,
    EndRunIn,
    FinishRunIn,
    PublicationOut,
    PublishRunIn,
    RunOut,
)


class RunHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def create(self, body: CreateRunIn, response: Response) -> RunOut:
        runs = self._catalog.runs
        try:
            runs.get_run(body.run_id)
            response.status_code = 200
        except core.NotFoundError:
            response.status_code = 201
        return RunOut.of(
            runs.create_run(body.run_id, body.tag, job_name=body.job_name, publish=body.publish)
        )

    def get(self, run_id: str) -> RunOut:
        return RunOut.of(self._catalog.runs.get_run(run_id))

    def finish(self, run_id: str, body: FinishRunIn) -> RunOut:
        return RunOut.of(self._catalog.runs.finish_run(run_id, body.status))

    def end(self, run_id: str, body: EndRunIn) -> RunOut:
        return RunOut.of(
            self._catalog.runs.end_run(
                run_id,
                body.status,
                finished_at=body.finished_at,
                failed_checks=body.failed_checks,
            )
        )

    def publish(self, run_id: str, body: PublishRunIn | None) -> PublicationOut:
        body = body or PublishRunIn()
        return PublicationOut.of(
            self._catalog.runs.publish(run_id, moved_by=body.moved_by, reason=body.reason)
        )
