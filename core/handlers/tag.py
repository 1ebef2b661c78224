"""HTTP handlers for tags: list, read, create or move (compare-and-swap), delete, history."""

import uuid

from fastapi import Response

import core
from core.handlers.errors import TagConflict
from core.handlers.headers import IfMatch, expected_revision, parse_if_match, revision_etag
from core.handlers.schemas import MoveTagIn, TagMoveOut, TagOut
from core.service.tag import TagWrite


class TagHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def list_tags(self) -> list[TagOut]:
        return [TagOut.of(tag) for tag in self._catalog.tags.list_tags()]

    def get(self, name: str, response: Response) -> TagOut:
        tag = self._catalog.tags.get_tag(name)
        response.headers["ETag"] = revision_etag(tag.revision)
        return TagOut.of(tag)

    def put(self, name: str, body: MoveTagIn, if_match: str | None, response: Response) -> TagOut:
        """Create or move the tag; answers with exactly the state this move left."""
        precondition = parse_if_match(if_match)
        target = self._catalog.refs.resolve(body.target)
        written = self._move(name, target.id, precondition, body.moved_by, body.reason)
        tag = written.tag
        assert tag is not None  # a move to a target leaves a live tag
        response.status_code = 201 if written.created else 200
        response.headers["ETag"] = revision_etag(tag.revision)
        return TagOut.of(tag)

    def delete(
        self, name: str, if_match: str | None, *, moved_by: str | None, reason: str | None
    ) -> Response:
        self._move(name, None, parse_if_match(if_match), moved_by, reason)
        return Response(status_code=204)

    def _move(
        self,
        name: str,
        target_id: uuid.UUID | None,
        if_match: IfMatch | None,
        moved_by: str | None,
        reason: str | None,
    ) -> TagWrite:
        """One move in one transaction (``If-Match: *``: the tag must exist); a conflict
        names the tag's current state."""
        try:
            return self._catalog.tags.move_to(
                name,
                target_id,
                expected_revision=expected_revision(
                    if_match, lambda: self._revision(name), f"tag {name!r}"
                ),
                must_exist=if_match is not None and if_match.any,
                moved_by=moved_by,
                reason=reason,
            )
        except core.ConflictError as error:
            raise TagConflict(str(error), self._current(name)) from error

    def history(self, name: str) -> list[TagMoveOut]:
        moves = self._catalog.tags.get_history(name)
        if not moves:
            raise core.NotFoundError(f"tag {name!r} has no history")
        return [TagMoveOut.of(move) for move in moves]

    def _revision(self, name: str) -> int | None:
        current = self._current(name)
        return None if current is None else current.revision

    def _current(self, name: str) -> core.Tag | None:
        try:
            return self._catalog.tags.get_tag(name)
        except core.NotFoundError:
            return None
