"""The sensors' read model of workflows: a tag's document, its moves and what they changed."""

import uuid
from typing import Any

from core.dag import EMPTY_DAG, changed_nodes, diff_nodes
from core.domain import MovesPage, TagMove, WorkflowMove
from core.errors import NotFoundError, ValidationError
from core.identifiers import check_limit, check_node_id, check_tag_name
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.storage.uow import UnitOfWorkFactory


class WorkflowMoves:
    """Reads workflows as sensors and readers see them; writes nothing."""

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork], artifacts: ArtifactResolution) -> None:
        self._uow = uow
        self._artifacts = artifacts

    def get_workflow_by_tag(self, tag: str) -> dict[str, Any]:
        """The resolved DAG document the tag points at."""
        check_tag_name(tag)
        with self._uow() as uow:
            document = self.document_in(uow, tag)
            uow.commit()
        return document

    def document_in(self, uow: UnitOfWork, tag: str) -> dict[str, Any]:
        """A step: ``get_workflow_by_tag`` in ``uow``."""
        check_tag_name(tag)
        head = uow.tags.get(tag)
        if head is None:
            raise NotFoundError(f"tag {tag!r} not found")
        return self._artifacts.resolve_in(uow, head.target_id)

    def diff(self, before_id: uuid.UUID, after_id: uuid.UUID) -> dict[str, dict[str, Any]]:
        """The nodes added, removed or changed from one version's document to another's."""
        return diff_nodes(self._artifacts.resolve(before_id), self._artifacts.resolve(after_id))

    def get_moves(
        self,
        tag: str,
        after_move_id: int | None,
        *,
        nodes: frozenset[str] | None = None,
        limit: int = 100,
    ) -> MovesPage:
        """Moves of ``tag`` after the cursor ``after_move_id``, for sensors.

        With no cursor only the latest move is returned. With ``nodes``, only moves that
        changed one of them (deletes never do); the cursor still passes the others.
        """
        check_tag_name(tag)
        for node in nodes or ():
            check_node_id(node, "in the nodes to watch")
        if after_move_id is not None:
            if type(after_move_id) is not int or after_move_id < 0:
                raise ValidationError(f"invalid move id {after_move_id!r}: expected an int >= 0")
            check_limit(limit)
        with self._uow() as uow:
            if after_move_id is None:
                last = uow.tags.last_move(tag)
                candidates = [] if last is None else [last]
            else:
                candidates = uow.tags.moves_after(tag, after_move_id, limit)
            page = [self._describe(uow, move) for move in candidates]
            uow.commit()
        cursor = candidates[-1].id if candidates else (after_move_id or 0)
        if nodes is not None:
            page = [move for move in page if move.changed_nodes & nodes]
        return MovesPage(page, cursor)

    def _describe(self, uow: UnitOfWork, move: TagMove) -> WorkflowMove:
        if move.to_target_id is None:
            return WorkflowMove(move, None, frozenset())
        after = self._artifacts.resolve_in(uow, move.to_target_id)
        before = (
            EMPTY_DAG
            if move.from_target_id is None
            else self._artifacts.resolve_in(uow, move.from_target_id)
        )
        version_hash = self._artifacts.get_in(uow, move.to_target_id).version_hash
        return WorkflowMove(move, version_hash, changed_nodes(before, after))
