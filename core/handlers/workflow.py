"""HTTP handlers for workflows: create, read, patch."""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Response

import core
from core.handlers.errors import TagConflict
from core.handlers.headers import expected_revision, parse_if_match, revision_etag
from core.handlers.schemas import CreateWorkflowIn, WorkflowCommitOut

T = TypeVar("T")


class WorkflowHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def create(self, body: CreateWorkflowIn, response: Response) -> WorkflowCommitOut:
        request = core.CreateWorkflowRequest(**body.model_dump())
        result = self._conflicts_named(
            body.tag, lambda: self._catalog.workflows.create_workflow(request)
        )
        response.status_code = 201 if result.changed else 200
        response.headers["ETag"] = revision_etag(result.revision)
        return WorkflowCommitOut.of(result)

    def get(self, tag: str, response: Response) -> dict[str, Any]:
        current = self._catalog.tags.get_tag(tag)
        response.headers["ETag"] = revision_etag(current.revision)
        return self._catalog.artifacts.resolve(current.target_id)

    def patch(
        self, tag: str, body: list[dict[str, Any]], if_match: str | None, response: Response
    ) -> WorkflowCommitOut:
        precondition = parse_if_match(if_match)

        def patch() -> core.CreateWorkflowResponse:
            revision = expected_revision(precondition, lambda: self._revision(tag), f"tag {tag!r}")
            return self._catalog.workflows.patch_workflow(tag, body, expected_revision=revision)

        result = self._conflicts_named(tag, patch)
        response.headers["ETag"] = revision_etag(result.revision)
        return WorkflowCommitOut.of(result)

    def _revision(self, tag: str) -> int | None:
        try:
            return self._catalog.tags.get_tag(tag).revision
        except core.NotFoundError:
            return None

    def _conflicts_named(self, tag: str, call: Callable[[], T]) -> T:
        """Run ``call``; a conflict names the tag's current target and revision."""
        try:
            return call()
        except core.PolicyError:
            raise
        except core.ConflictError as error:
            try:
                current = self._catalog.tags.get_tag(tag)
            except core.NotFoundError:
                current = None
            raise TagConflict(str(error), current) from error
