"""HTTP handlers for tags: list, read, create or move (compare-and-swap), delete, history."""

from fastapi import Response

import core
from core.handlers.errors import TagConflict
from core.handlers.headers import expected_revision, revision_etag
from core.handlers.schemas import MoveTagIn, TagMoveOut, TagOut


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
        revision = expected_revision(if_match)
        target = self._catalog.refs.resolve(body.target)
        tags = self._catalog.tags
        if revision is None:
            existed = self._current(name) is not None
            tag = tags.create_or_move_tag(
                name, target.id, moved_by=body.moved_by, reason=body.reason
            )
            response.status_code = 200 if existed else 201
        else:
            current = self._current(name)
            if not tags.compare_and_swap(
                name,
                current and current.target_id,
                target.id,
                moved_by=body.moved_by,
                reason=body.reason,
                expected_revision=revision,
            ):
                raise TagConflict(
                    f"tag {name!r} is not at revision {revision}", self._current(name)
                )
            tag = tags.get_tag(name)
        response.headers["ETag"] = revision_etag(tag.revision)
        return TagOut.of(tag)

    def delete(
        self, name: str, if_match: str | None, *, moved_by: str | None, reason: str | None
    ) -> Response:
        revision = expected_revision(if_match)
        if revision is None:
            self._catalog.tags.delete_tag(name, moved_by=moved_by, reason=reason)
        else:
            current = self._catalog.tags.get_tag(name)
            if not self._catalog.tags.compare_and_swap(
                name,
                current.target_id,
                None,
                moved_by=moved_by,
                reason=reason,
                expected_revision=revision,
            ):
                raise TagConflict(
                    f"tag {name!r} is not at revision {revision}", self._current(name)
                )
        return Response(status_code=204)

    def history(self, name: str) -> list[TagMoveOut]:
        moves = self._catalog.tags.get_history(name)
        if not moves:
            raise core.NotFoundError(f"tag {name!r} has no history")
        return [TagMoveOut.of(move) for move in moves]

    def _current(self, name: str) -> core.Tag | None:
        try:
            return self._catalog.tags.get_tag(name)
        except core.NotFoundError:
            return None
