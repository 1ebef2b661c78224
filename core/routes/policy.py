"""Routes: /policies (patterns contain '/': the history route is matched first)."""

from typing import Annotated

from fastapi import APIRouter, Query, Response

import core
from core.handlers.errors import RetryingRoute
from core.handlers.policy import PolicyHandler
from core.handlers.schemas import ERROR_RESPONSES, TagPolicyChangeOut, TagPolicyIn, TagPolicyOut


def router(catalog: core.Services) -> APIRouter:
    handler = PolicyHandler(catalog)
    routes = APIRouter(
        prefix="/policies", tags=["policies"], responses=ERROR_RESPONSES, route_class=RetryingRoute
    )

    @routes.get("", summary="Every tag policy, by pattern")
    def list_policies() -> list[TagPolicyOut]:
        return handler.list_policies()

    @routes.get("/history", summary="Every change of the tag policies, oldest first")
    def policy_history(
        pattern: Annotated[str | None, Query(description="Only this pattern's changes")] = None,
    ) -> list[TagPolicyChangeOut]:
        return handler.history(pattern)

    @routes.put("/{pattern:path}", summary="Set the policy of the tags matching a glob")
    def put_policy(pattern: str, body: TagPolicyIn) -> TagPolicyOut:
        return handler.put(pattern, body)

    @routes.delete("/{pattern:path}", status_code=204, summary="Delete a tag policy")
    def delete_policy(
        pattern: str,
        moved_by: Annotated[str | None, Query(description="Who deletes it (history)")] = None,
    ) -> Response:
        return handler.delete(pattern, moved_by)

    return routes
