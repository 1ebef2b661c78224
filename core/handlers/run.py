"""HTTP handlers for runs: create (pin a snapshot), read, finish."""

from fastapi import Response

import core
from core.handlers.schemas import CreateRunIn, FinishRunIn, RunOut


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
        return RunOut.of(runs.create_run(body.run_id, body.tag, job_name=body.job_name))

    def get(self, run_id: str) -> RunOut:
        return RunOut.of(self._catalog.runs.get_run(run_id))

    def finish(self, run_id: str, body: FinishRunIn) -> RunOut:
        return RunOut.of(self._catalog.runs.finish_run(run_id, body.status))
