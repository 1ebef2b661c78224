"""Routes: /artifacts (an artifact id, or any ref)."""

from fastapi import APIRouter

import core
from core.handlers.artifact import ArtifactHandler
from core.handlers.errors import RetryingRoute
from core.handlers.schemas import ERROR_RESPONSES, ArtifactOut


def router(catalog: core.Services) -> APIRouter:
    handler = ArtifactHandler(catalog)
    routes = APIRouter(
        prefix="/artifacts",
        tags=["artifacts"],
        responses=ERROR_RESPONSES,
        route_class=RetryingRoute,
    )

    @routes.get("/{ref:path}/chain", summary="The patch chain: base dag_version first")
    def get_chain(ref: str) -> list[ArtifactOut]:
        return handler.chain(ref)

    @routes.get("/{ref:path}", summary="One artifact")
    def get_artifact(ref: str) -> ArtifactOut:
        return handler.get(ref)

    return routes
