"""Routes: /tags (names contain '/': the history and policy routes are matched first)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

import core
from core.handlers.errors import RetryingRoute
from core.handlers.schemas import (
    ERROR_RESPONSES,
    MergeIn,
    MergeOut,
    MoveTagIn,
    TagMoveOut,
    TagOut,
    TagPolicyOut,
)
from core.handlers.tag import TagHandler
from core.routes.headers import IfMatchHeader


def router(catalog: core.Services) -> APIRouter:
    handler = TagHandler(catalog)
    routes = APIRouter(
        prefix="/tags", tags=["tags"], responses=ERROR_RESPONSES, route_class=RetryingRoute
    )

    @routes.get("", summary="Every tag")
    def list_tags() -> list[TagOut]:
        return handler.list_tags()

    @routes.get("/{name:path}/history", summary="A tag's moves, oldest first")
    def tag_history(name: str) -> list[TagMoveOut]:
        return handler.history(name)

    @routes.get("/{name:path}/policy", summary="The tag policy that governs a tag")
    def tag_policy(name: str) -> TagPolicyOut:
        return handler.policy(name)

    @routes.post(
        "/{name:path}/merge",
        summary="Merge a version into a tag, three-way (dry_run: only say what would merge)",
    )
    def merge_into_tag(name: str, body: MergeIn, response: Response) -> MergeOut:
        return handler.merge(name, body, response)

    @routes.get("/{name:path}", summary="One tag")
    def get_tag(name: str, response: Response) -> TagOut:
        return handler.get(name, response)

    @routes.put("/{name:path}", summary="Create or move a tag (If-Match: compare-and-swap)")
    def put_tag(
        name: str,
        body: MoveTagIn,
        response: Response,
        if_match: IfMatchHeader,
    ) -> TagOut:
        return handler.put(name, body, if_match, response)

    @routes.delete("/{name:path}", status_code=204, summary="Delete a tag (history stays)")
    def delete_tag(
        name: str,
        if_match: IfMatchHeader,
        moved_by: Annotated[str | None, Query(description="Who deletes it (history)")] = None,
        reason: Annotated[str | None, Query(description="Why (history)")] = None,
    ) -> Response:
        return handler.delete(name, if_match, moved_by=moved_by, reason=reason)

    return routes
