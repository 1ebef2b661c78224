"""Routes: /artifacts (an artifact id, or any ref), its chain and its blame."""

from fastapi import APIRouter

import core
from core.handlers.artifact import ArtifactHandler
from core.handlers.errors import RetryingRoute
from core.handlers.lineage import LineageHandler
from core.handlers.schemas import ERROR_RESPONSES, ArtifactOut, BlameOut


def router(catalog: core.Services) -> APIRouter:
    handler = ArtifactHandler(catalog)
    lineage = LineageHandler(catalog)
    routes = APIRouter(
        prefix="/artifacts",
        tags=["artifacts"],
        responses=ERROR_RESPONSES,
        route_class=RetryingRoute,
    )

    @routes.get("/{ref:path}/chain", summary="The patch chain: base dag_version first")
    def get_chain(ref: str) -> list[ArtifactOut]:
        return handler.chain(ref)

    @routes.get(
        "/{ref:path}/blame",
        summary="Each value of the version: since which version it is unchanged, which run "
        "produced it",
    )
    def get_blame(ref: str) -> BlameOut:
        return lineage.blame(ref)

    @routes.get("/{ref:path}", summary="One artifact")
    def get_artifact(ref: str) -> ArtifactOut:
        return handler.get(ref)

    return routes
