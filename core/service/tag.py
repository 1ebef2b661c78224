"""Tags: named pointers with compare-and-swap moves and an append-only history."""

import uuid
from dataclasses import dataclass

from core.domain import Tag, TagMove
from core.errors import ConflictError, NotFoundError, ValidationError
from core.identifiers import check_artifact_id, check_limit, check_tag_name
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.service.tag_moves import TagMoves, check_move_fields
from core.service.tag_policies import TagPolicies
from core.storage.uow import UnitOfWorkFactory

MAX_MOVES_PER_POLL = 1000
MAX_SWAP_ATTEMPTS = 100
"""An unconditional move retries its compare-and-swap this often against racing writers."""


class _LostRace(Exception):
    """Another writer moved the tag between our read and our compare-and-swap."""


@dataclass(frozen=True)
class TagWrite:
    """The state one call left a tag in, read in the transaction that made it: ``tag``
    (``None`` once deleted) and whether this call created it."""

    tag: Tag | None
    created: bool


class TagService:
    """Every move is a compare-and-swap that appends one history row in its transaction.

    A move that would leave the tag where it is records nothing. A deleted tag keeps its
    history, and its revision keeps counting when the name is created again. Tag policies
    (``set_policy``, ``core.service.tag_policies``) may refuse a move: ``PolicyError``.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        artifacts: ArtifactResolution,
        moves: TagMoves,
        policies: TagPolicies,
    ) -> None:
        self._uow = uow
        self._artifacts = artifacts
        self.moves = moves
        self.policies = policies
        self.set_policy = policies.set_policy
        self.get_policy = policies.get_policy
        self.list_policies = policies.list_policies
        self.delete_policy = policies.delete_policy
        self.policy_history = policies.policy_history

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
            if not self.moves.swap(
                uow, name, None, target_id, moved_by=moved_by, reason=reason, run_id=run_id
            ):
                raise ConflictError(f"tag {name!r} already exists")
            tag = self._live(uow, name)
            uow.commit()
        return tag

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
        check_move_fields(moved_by, reason, run_id)
        must_exist = must_exist or target_id is None
        if expected_revision is None:
            return self._force(name, target_id, moved_by, reason, run_id, must_exist=must_exist)
        with self._uow() as uow:
            current = uow.tags.get(name)
            if current is None and must_exist:
                raise NotFoundError(f"tag {name!r} not found")
            if not self.moves.swap(
                uow,
                name,
                current and current.target_id,
                target_id,
                moved_by=moved_by,
                reason=reason,
                run_id=run_id,
                expected_revision=expected_revision,
            ):
                raise ConflictError(f"tag {name!r} is not at revision {expected_revision}")
            written = self._written(uow, name, target_id, created=current is None)
            uow.commit()
        return written

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
            self._live(uow, name)  # the swap checks the ids
            if not self.moves.swap(
                uow, name, expected_id, target_id, moved_by=moved_by, reason=reason
            ):
                expected = self._artifacts.get_in(uow, check_artifact_id(expected_id))
                raise ConflictError(
                    f"tag {name!r} no longer points at {expected.version_hash}: not moved"
                )
            moved = None if target_id is None else self._live(uow, name)
            uow.commit()
        return moved

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
            if not self.moves.swap(
                uow,
                name,
                current.target_id,
                to_target_id,
                moved_by=moved_by,
                reason="rollback",
                expected_revision=current.revision,
                action="a rollback",
            ):
                raise ConflictError(f"tag {name!r} moved during the rollback")
            tag = self._live(uow, name)
            uow.commit()
        return tag

    def get_tag(self, name: str) -> Tag:
        check_tag_name(name)
        with self._uow() as uow:
            tag = self._live(uow, name)
            uow.commit()
        return tag

    def list_tags(self) -> list[Tag]:
        with self._uow() as uow:
            tags = uow.tags.list_live()
            uow.commit()
        return tags

    def get_history(self, name: str) -> list[TagMove]:
        """Every move of ``name``, oldest first (deleted tags included)."""
        check_tag_name(name)
        with self._uow() as uow:
            history = uow.tags.history(name)
            uow.commit()
        return history

    def get_moves_after(
        self, name: str, after_move_id: int, *, limit: int = MAX_MOVES_PER_POLL
    ) -> list[TagMove]:
        """Moves of ``name`` newer than ``after_move_id``, oldest first: a sensor's poll."""
        check_tag_name(name)
        if type(after_move_id) is not int or after_move_id < 0:
            raise ValidationError(f"invalid move id {after_move_id!r}: expected an int >= 0")
        check_limit(limit)
        with self._uow() as uow:
            moves = uow.tags.moves_after(name, after_move_id, limit)
            uow.commit()
        return moves

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
        with self._uow() as uow:
            moved = self.moves.swap(
                uow,
                name,
                expected_target_id,
                new_target_id,
                moved_by=moved_by,
                reason=reason,
                run_id=run_id,
                expected_revision=expected_revision,
            )
            uow.commit()
        return moved

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
        check_move_fields(moved_by, reason, run_id)

        def attempt(uow: UnitOfWork) -> TagWrite:
            current = uow.tags.get(name)
            if current is None and must_exist:
                raise NotFoundError(f"tag {name!r} not found")
            if current is not None and current.target_id == target_id:
                return TagWrite(current, created=False)
            expected = None if current is None else current.target_id
            if not self.moves.swap(
                uow, name, expected, target_id, moved_by=moved_by, reason=reason, run_id=run_id
            ):
                raise _LostRace
            return self._written(uow, name, target_id, created=current is None)

        try:
            return self._uow.run(attempt, lost=_LostRace, attempts=MAX_SWAP_ATTEMPTS, in_place=True)
        except _LostRace:
            raise ConflictError(
                f"tag {name!r} kept moving under {MAX_SWAP_ATTEMPTS} attempts to move it"
            ) from None

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
