"""HTTP handlers for tags: list, read, create or move (compare-and-swap), delete, history,
merge a version into one."""

import uuid

from fastapi import Response

import core
from core.dag import changed_nodes
from core.handlers.errors import TagConflict
from core.handlers.headers import IfMatch, expected_revision, parse_if_match, revision_etag
from core.handlers.schemas import (
    MergeIn,
    MergeOut,
    MoveTagIn,
    TagMoveOut,
    TagOut,
    TagPolicyOut,
)
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
        except core.PolicyError:
            raise
        except core.ConflictError as error:
            raise TagConflict(str(error), self._current(name)) from error

    def merge(self, name: str, body: MergeIn, response: Response) -> MergeOut:
        """Merge ``body.source`` into the tag (or only preview it, ``dry_run``). Conflicts
        are a ``MergeConflictError`` (409 naming them, a dry run's too); a tag that is not
        at ``expected_target_id`` a conflict naming its current state."""
        if body.dry_run:
            return self._preview(name, body)
        try:
            result = self._catalog.workflows.merge(
                body.source,
                name,
                expected_target_id=body.expected_target_id,
                moved_by=body.moved_by,
                reason=body.reason,
            )
        except (core.MergeConflictError, core.PolicyError):
            raise
        except core.ConflictError as error:
            raise TagConflict(str(error), self._current(name)) from error
        response.headers["ETag"] = revision_etag(result.revision)
        nodes: frozenset[str] = frozenset()
        if result.changed and result.to_target_id is not None:
            before = result.from_target_id
            old = {} if before is None else self._catalog.artifacts.resolve(before)
            nodes = changed_nodes(old, self._catalog.artifacts.resolve(result.to_target_id))
        return MergeOut(
            tag=name,
            source=body.source,
            dry_run=False,
            from_target_id=result.from_target_id,
            to_target_id=result.to_target_id,
            revision=result.revision,
            fast_forward=result.fast_forward,
            changed=result.changed,
            changed_nodes=sorted(nodes),
        )

    def _preview(self, name: str, body: MergeIn) -> MergeOut:
        preview = self._catalog.workflows.preview_merge(body.source, name)
        expected = body.expected_target_id
        if expected is not None and preview.from_target_id != expected:
            raise TagConflict(
                f"tag {name!r} points at {preview.from_target_id}, not the expected "
                f"{expected}; nothing moved (dry run)",
                self._current(name),
            )
        if preview.conflicts:
            names = ", ".join(n if k is None else f"{n}[{k}]" for n, k in preview.conflicts)
            raise core.MergeConflictError(
                f"merging {body.source!r} into tag {name!r} would conflict on {names}; "
                "nothing moved (dry run)",
                list(preview.conflicts),
            )
        return MergeOut(
            tag=name,
            source=body.source,
            dry_run=True,
            from_target_id=preview.from_target_id,
            to_target_id=None,
            revision=None,
            fast_forward=preview.fast_forward,
            changed=preview.changed,
            changed_nodes=sorted(preview.changed_nodes),
        )

    def policy(self, name: str) -> TagPolicyOut:
        governing = self._catalog.tags.get_policy(name)
        if governing is None:
            raise core.NotFoundError(f"no tag policy governs tag {name!r}")
        return TagPolicyOut.of(governing)

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
