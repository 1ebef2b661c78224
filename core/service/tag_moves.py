"""Direct tag moves (create, move, compare-and-swap, delete, rollback): the checks, then
one compare-and-swap with its history row (``TagRepository.move``). Commits move their
tag through their ``CommitRecord`` instead (``core.storage.commit_record``)."""

import uuid

from core.identifiers import (
    check_actor,
    check_artifact_id,
    check_reason,
    check_revision,
    check_run_id,
    check_tag_name,
)
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.service.tag_policies import TagPolicies


def check_move_fields(moved_by: object, reason: object, run_id: object) -> None:
    check_actor(moved_by, "moved_by")
    check_reason(reason)
    if run_id is not None:
        check_run_id(run_id)


class TagMoves:
    """Moves tags inside a caller's unit of work (the tag service's moves)."""

    def __init__(self, artifacts: ArtifactResolution, policies: TagPolicies) -> None:
        self._artifacts = artifacts
        self._policies = policies

    def swap(
        self,
        uow: UnitOfWork,
        name: str,
        expected_target_id: uuid.UUID | None,
        new_target_id: uuid.UUID | None,
        *,
        moved_by: str | None = None,
        reason: str | None = None,
        run_id: str | None = None,
        expected_revision: int | None = None,
        action: str | None = None,
    ) -> bool:
        """Move ``name`` from ``expected_target_id`` to ``new_target_id``; ``False`` if lost.

        ``expected_target_id=None`` means the tag must not exist yet; ``new_target_id=None``
        deletes it. With ``expected_revision`` the tag must also be at that revision. A
        deleted tag keeps its revision, which counts on when the name is created again.
        A move the tag's policy refuses is a ``PolicyError`` (``core.service.tag_policies``)
        naming ``action`` (default: a delete, or a direct move or compare-and-swap).
        """
        check_tag_name(name)
        expected = None if expected_target_id is None else check_artifact_id(expected_target_id)
        new = None if new_target_id is None else check_artifact_id(new_target_id)
        check_revision(expected_revision)
        check_move_fields(moved_by, reason, run_id)
        if expected is None and new is None:
            return False
        if expected is not None and expected == new:  # already there: nothing to record
            current = uow.tags.get(name)
            return (
                current is not None
                and current.target_id == expected
                and expected_revision in (None, current.revision)
            )
        action = action or ("a delete" if new is None else "a direct move or compare-and-swap")
        self._policies.refuse_direct_in(uow, name, action)
        target = None if new is None else self._artifacts.get_in(uow, new)
        revision = uow.tags.move(
            name,
            expected_target_id=expected,
            expected_revision=expected_revision,
            new_target_id=new,
            new_target_kind=target and target.kind,
            moved_by=moved_by,
            reason=reason,
            run_id=run_id,
        )
        return revision is not None
