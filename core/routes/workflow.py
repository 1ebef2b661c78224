"""Routes: /workflows."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response

import core
from core.handlers.errors import RetryingRoute
from core.handlers.schemas import ERROR_RESPONSES, CreateWorkflowIn, WorkflowCommitOut
from core.handlers.workflow import WorkflowHandler
from core.routes.headers import IfMatchHeader


def router(catalog: core.Services) -> APIRouter:
    handler = WorkflowHandler(catalog)
    routes = APIRouter(
        prefix="/workflows",
        tags=["workflows"],
        responses=ERROR_RESPONSES,
        route_class=RetryingRoute,
    )

    @routes.post("", status_code=201, summary="Store a DAG as a new version and move its tag")
    def create_workflow(body: CreateWorkflowIn, response: Response) -> WorkflowCommitOut:
        return handler.create(body, response)

    @routes.get("/{tag:path}", summary="The resolved DAG document a tag points at")
    def get_workflow(tag: str, response: Response) -> dict[str, Any]:
        return handler.get(tag, response)

    @routes.patch("/{tag:path}", summary="Apply an RFC 6902 JSON Patch and move the tag")
    def patch_workflow(
        tag: str,
        response: Response,
        body: Annotated[list[dict[str, Any]], Body(description="RFC 6902 operations")],
        if_match: IfMatchHeader,
    ) -> WorkflowCommitOut:
        return handler.patch(tag, body, if_match, response)

    return routes
