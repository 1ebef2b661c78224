"""Tags: named pointers with compare-and-swap moves and an append-only history."""

import uuid
from dataclasses import dataclass

from core.domain import Tag, TagMove
from core.errors import ConflictError, NotFoundError, ValidationError
from core.identifiers import (
    check_actor,
    check_artifact_id,
    check_limit,
    check_reason,
    check_revision,
    check_run_id,
    check_tag_name,
)
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact import ArtifactService
from core.storage.uow import UnitOfWorkFactory

MAX_MOVES_PER_POLL = 1000
MAX_SWAP_ATTEMPTS = 100
"""An unconditional move retries its compare-and-swap this often against racing writers."""


def _check_move_fields(moved_by: object, reason: object, run_id: object) -> None:
    check_actor(moved_by, "moved_by")
    check_reason(reason)
    if run_id is not None:
        check_run_id(run_id)


@dataclass(frozen=True)
class TagWrite:
    """The state one call left a tag in, read in the transaction that made it: ``tag``
    (``None`` once deleted) and whether this call created it."""

    tag: Tag | None
    created: bool


class TagService:
    """Every move is a compare-and-swap that appends one history row in its transaction.

    A move that would leave the tag where it is records nothing. A deleted tag keeps its
    history, and its revision keeps counting when the name is created again.
    """

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork], artifacts: ArtifactService) -> None:
        self._uow = uow
        self._artifacts = artifacts

    def create_tag(
        self,
        name: str,
        target_id: uuid.UUID,
        *,
        moved_by: str | None = None,
        reason: str | None = None,
        run_id: str | None = None,
    ) -> Tag:
        """Create ``name`` at ``target_id``; ``ConflictError`` if it exists."""
        target_id = check_artifact_id(target_id)
        with self._uow() as uow:
            if not self.compare_and_swap(
                name, None, target_id, moved_by=moved_by, reason=reason, run_id=run_id
            ):
                raise ConflictError(f"tag {name!r} already exists")
            return self._live(uow, name)

    def move_tag(
        self,
        name: str,
        target_id: uuid.UUID,
        *,
        moved_by: str | None = None,
        reason: str | None = None,
        run_id: str | None = None,
    ) -> Tag:
        """Move the existing tag ``name`` to ``target_id`` (``NotFoundError`` if absent)."""
        target_id = check_artifact_id(target_id)
        moved = self._force(name, target_id, moved_by, reason, run_id, must_exist=True).tag
        assert moved is not None  # a move to a target leaves a live tag
        return moved

    def create_or_move_tag(
        self,
        name: str,
        target_id: uuid.UUID,
        *,
        moved_by: str | None = None,
        reason: str | None = None,
        run_id: str | None = None,
    ) -> Tag:
        """Point ``name`` at ``target_id``, creating it if needed."""
        target_id = check_artifact_id(target_id)
        moved = self._force(name, target_id, moved_by, reason, run_id, must_exist=False).tag
        assert moved is not None  # a move to a target leaves a live tag
        return moved

    def delete_tag(
        self, name: str, *, moved_by: str | None = None, reason: str | None = None
    ) -> None:
        """Delete ``name``: a move to no target, so its history and revision survive."""
        self._force(name, None, moved_by, reason, None, must_exist=True)

    def move_to(
        self,
        name: str,
        target_id: uuid.UUID | None,
        *,
        expected_revision: int | None = None,
        must_exist: bool = False,
        moved_by: str | None = None,
        reason: str | None = None,
        run_id: str | None = None,
    ) -> TagWrite:
        """Point ``name`` at ``target_id`` (``None`` deletes it); the state this call left.

        With ``expected_revision``, a compare-and-swap: ``ConflictError`` unless the tag is
        at that revision (a deleted tag keeps its revision, so it is re-created at it).
        Without, a move from wherever it points now, creating it if needed. Deleting a
        tag that does not exist (or moving one, with ``must_exist``) is ``NotFoundError``;
        a move to where the tag already is records nothing and returns it as it is.
        """
        check_tag_name(name)
        target_id = None if target_id is None else check_artifact_id(target_id)
        _check_move_fields(moved_by, reason, run_id)
        must_exist = must_exist or target_id is None
        if expected_revision is None:
            return self._force(name, target_id, moved_by, reason, run_id, must_exist=must_exist)
        with self._uow() as uow:
            current = uow.tags.get(name)
            if current is None and must_exist:
                raise NotFoundError(f"tag {name!r} not found")
            if not self.compare_and_swap(
                name,
                current and current.target_id,
                target_id,
                moved_by=moved_by,
                reason=reason,
                run_id=run_id,
                expected_revision=expected_revision,
            ):
                raise ConflictError(f"tag {name!r} is not at revision {expected_revision}")
            return self._written(uow, name, target_id, created=current is None)

    def move_if_at(
        self,
        name: str,
        expected_id: uuid.UUID,
        target_id: uuid.UUID | None,
        *,
        moved_by: str | None = None,
        reason: str | None = None,
    ) -> Tag | None:
        """Move ``name`` to ``target_id`` (``None`` deletes it) only if it points at
        ``expected_id``: ``NotFoundError`` if there is no such tag, ``ConflictError`` if
        it points elsewhere. Returns the moved tag."""
        check_tag_name(name)
        with self._uow() as uow:
            self._live(uow, name)  # compare_and_swap checks the ids
            if not self.compare_and_swap(
                name, expected_id, target_id, moved_by=moved_by, reason=reason
            ):
                expected = self._artifacts.get_by_id(expected_id).version_hash
                raise ConflictError(f"tag {name!r} no longer points at {expected}: not moved")
            return None if target_id is None else self._live(uow, name)

    def rollback(
        self,
        name: str,
        to_target_id: uuid.UUID | None = None,
        *,
        moved_by: str | None = None,
    ) -> Tag:
        """Move ``name`` back to ``to_target_id`` (default: its target before the last move).

        A compare-and-swap against the current target, recorded with reason ``rollback``;
        ``ConflictError`` if the tag moved meanwhile.
        """
        check_tag_name(name)
        with self._uow() as uow:
            current = self._live(uow, name)
            if to_target_id is None:
                last = uow.tags.last_move(name)
                to_target_id = last and last.from_target_id
                if to_target_id is None:
                    raise NotFoundError(
                        f"tag {name!r} has no previous target to roll back to ({name}@{{1}})"
                    )
            if not self.compare_and_swap(
                name,
                current.target_id,
                to_target_id,
                moved_by=moved_by,
                reason="rollback",
                expected_revision=current.revision,
            ):
                raise ConflictError(f"tag {name!r} moved during the rollback")
            return self._live(uow, name)

    def get_tag(self, name: str) -> Tag:
        check_tag_name(name)
        with self._uow() as uow:
            return self._live(uow, name)

    def list_tags(self) -> list[Tag]:
        with self._uow() as uow:
            return uow.tags.list_live()

    def get_history(self, name: str) -> list[TagMove]:
        """Every move of ``name``, oldest first (deleted tags included)."""
        check_tag_name(name)
        with self._uow() as uow:
            return uow.tags.history(name)

    def get_moves_after(
        self, name: str, after_move_id: int, *, limit: int = MAX_MOVES_PER_POLL
    ) -> list[TagMove]:
        """Moves of ``name`` newer than ``after_move_id``, oldest first: a sensor's poll."""
        check_tag_name(name)
        if type(after_move_id) is not int or after_move_id < 0:
            raise ValidationError(f"invalid move id {after_move_id!r}: expected an int >= 0")
        check_limit(limit)
        with self._uow() as uow:
            return uow.tags.moves_after(name, after_move_id, limit)

    def compare_and_swap(
        self,
        name: str,
        expected_target_id: uuid.UUID | None,
        new_target_id: uuid.UUID | None,
        *,
        moved_by: str | None = None,
        reason: str | None = None,
        run_id: str | None = None,
        expected_revision: int | None = None,
    ) -> bool:
        """Move ``name`` from ``expected_target_id`` to ``new_target_id``; ``False`` if lost.

        ``expected_target_id=None`` means the tag must not exist yet; ``new_target_id=None``
        deletes it. With ``expected_revision`` the tag must also be at that revision.
        """
        check_tag_name(name)
        expected = None if expected_target_id is None else check_artifact_id(expected_target_id)
        new = None if new_target_id is None else check_artifact_id(new_target_id)
        check_revision(expected_revision)
        _check_move_fields(moved_by, reason, run_id)
        if expected is None and new is None:
            return False
        with self._uow() as uow:
            if expected is not None and expected == new:  # already there: nothing to record
                current = uow.tags.get(name)
                return (
                    current is not None
                    and current.target_id == expected
                    and expected_revision in (None, current.revision)
                )
            target = None if new is None else self._artifacts.get_by_id(new)
            revision = uow.tags.swap(
                name,
                expected_target_id=expected,
                expected_revision=expected_revision,
                new_target_id=new,
                new_target_kind=target and target.kind,
                updated_by=moved_by,
            )
            if revision is None and expected is None and expected_revision in (None, 0):
                assert target is not None
                created = uow.tags.insert(name, target.id, target.kind, moved_by)
                revision = created and created.revision
            if revision is None:
                return False
            uow.tags.append_move(
                name,
                from_target_id=expected,
                to_target_id=new,
                revision=revision,
                moved_by=moved_by,
                reason=reason,
                run_id=run_id,
            )
            return True

    def _force(
        self,
        name: str,
        target_id: uuid.UUID | None,
        moved_by: str | None,
        reason: str | None,
        run_id: str | None,
        *,
        must_exist: bool,
    ) -> TagWrite:
        """Swap from whatever the tag points at now, retrying when another writer wins."""
        check_tag_name(name)
        _check_move_fields(moved_by, reason, run_id)
        for _ in range(MAX_SWAP_ATTEMPTS):
            with self._uow() as uow:
                current = uow.tags.get(name)
                if current is None and must_exist:
                    raise NotFoundError(f"tag {name!r} not found")
                if current is not None and current.target_id == target_id:
                    return TagWrite(current, created=False)
                expected = None if current is None else current.target_id
                if self.compare_and_swap(
                    name, expected, target_id, moved_by=moved_by, reason=reason, run_id=run_id
                ):
                    return self._written(uow, name, target_id, created=current is None)
        raise ConflictError(
            f"tag {name!r} kept moving under {MAX_SWAP_ATTEMPTS} attempts to move it"
        )

    def _written(
        self, uow: UnitOfWork, name: str, target_id: uuid.UUID | None, *, created: bool
    ) -> TagWrite:
        """The tag as a move that just won left it, read in the move's own transaction
        (which holds the tag's row until it commits, so no later move shows)."""
        return TagWrite(None if target_id is None else self._live(uow, name), created)

    def _live(self, uow: UnitOfWork, name: str) -> Tag:
        tag = uow.tags.get(name)
        if tag is None:
            raise NotFoundError(f"tag {name!r} not found")
        return tag
