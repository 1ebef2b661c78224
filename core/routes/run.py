"""Routes: /runs."""

from typing import Annotated

from fastapi import APIRouter, Body, Response

import core
from core.handlers.errors import RetryingRoute
from core.handlers.run import RunHandler
from core.handlers.schemas import (
    ERROR_RESPONSES,
    CreateRunIn,
    EndRunIn,
    FinishRunIn,
    PublicationOut,
    PublishRunIn,
    RunOut,
)


def router(catalog: core.Services) -> APIRouter:
    handler = RunHandler(catalog)
    routes = APIRouter(
        prefix="/runs", tags=["runs"], responses=ERROR_RESPONSES, route_class=RetryingRoute
    )

    @routes.post("", status_code=201, summary="Start a run pinned to a tag's current version")
    def create_run(body: CreateRunIn, response: Response) -> RunOut:
        return handler.create(body, response)

    @routes.get("/{run_id:path}", summary="One run")
    def get_run(run_id: str) -> RunOut:
        return handler.get(run_id)

    @routes.post("/{run_id:path}/finish", summary="Record a run's final status")
    def finish_run(run_id: str, body: FinishRunIn) -> RunOut:
        return handler.finish(run_id, body)

    @routes.post(
        "/{run_id:path}/end",
        summary="Record a run's end: its final status and, for a publish=run run, the audit "
        "(published when it succeeded with no failed ERROR check)",
    )
    def end_run(run_id: str, body: EndRunIn) -> RunOut:
        return handler.end(run_id, body)

    @routes.post(
        "/{run_id:path}/publish",
        summary="Publish a publish=run run: its staged values land on its tag in one move",
    )
    def publish_run(
        run_id: str, body: Annotated[PublishRunIn | None, Body()] = None
    ) -> PublicationOut:
        return handler.publish(run_id, body)

    return routes
