"""Refs: the names users give versions on a command line, over HTTP or in a pin."""

import contextlib
import uuid
from datetime import datetime

from core.domain import Artifact, Run
from core.errors import NotFoundError, ValidationError
from core.identifiers import MIN_RUN_PREFIX, TAG_NAME_PATTERN
from core.ref_syntax import (
    ARTIFACT_ID,
    HASH_PREFIX,
    HEX_PREFIX,
    MAX_STEPS,
    MIN_PREFIX,
    AsOf,
    Base,
    Named,
    PinnedBy,
    Position,
    Ref,
    Staged,
    parse_ref,
)
from core.repository.clock import stored
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.storage.uow import UnitOfWorkFactory


class RefService:
    """Resolves a ref (the grammar of ``core.ref_syntax``) to an artifact.

    A live tag wins over a hash prefix that happens to spell the same; an artifact id
    over a tag of that name.
    """

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork], artifacts: ArtifactResolution) -> None:
        self._uow = uow
        self._artifacts = artifacts

    def resolve(self, ref: str) -> Artifact:
        with self._uow() as uow:
            artifact = self.resolve_in(uow, ref)
            uow.commit()
        return artifact

    def resolve_in(self, uow: UnitOfWork, ref: str) -> Artifact:
        """``resolve`` in ``uow``."""
        parsed = parse_ref(ref)
        try:
            found = self._base(uow, parsed, parsed.base)
        except NotFoundError as exc:
            raise NotFoundError(f"unknown ref {ref!r}: {exc}") from exc
        if parsed.first_parents == 0:
            return found if isinstance(found, Artifact) else self._artifacts.get_in(uow, found)
        start = found.id if isinstance(found, Artifact) else found
        ancestor = (
            uow.artifacts.first_parent(start, parsed.first_parents)
            if parsed.first_parents <= MAX_STEPS
            else None
        )
        if ancestor is None:
            raise NotFoundError(
                f"ref {ref!r} names no version: fewer than {parsed.first_parents} first "
                "parents lie below where it starts"
            )
        return ancestor

    def _base(self, uow: UnitOfWork, ref: Ref, base: Base) -> Artifact | uuid.UUID:
        """The artifact (or only its id, when that is all a lookup gave) a ref starts at."""
        match base:
            case Named(name):
                return self._named(uow, ref.text, name)
            case Staged(run_id):
                run = self._run(uow, run_id, ref.text)
                target = run.head_id or run.base_id
                if target is None:
                    raise NotFoundError(f"run {run.run_id!r} has staged nothing, and has no base")
                return target
            case Position(tag, moves_back):
                move = uow.tags.move_at(tag, moves_back) if moves_back <= MAX_STEPS else None
                if move is None:
                    raise NotFoundError(f"tag {tag!r} has no position @{{{moves_back}}}")
                if move.to_target_id is None:
                    raise NotFoundError(f"tag {tag!r} was deleted at position @{{{moves_back}}}")
                return move.to_target_id
            case AsOf(tag, instant):
                return self._as_of(uow, tag, instant)
            case PinnedBy(tag, run_id):
                run = self._run(uow, run_id, ref.text)
                pinned = uow.runs.pinned(run.run_id, tag)
                if pinned is None and run.tag == tag:
                    pinned = run.base_id
                    if pinned is None:
                        raise NotFoundError(f"tag {tag!r} did not exist when run {run_id!r} began")
                if pinned is None:
                    raise NotFoundError(f"run {run.run_id!r} did not read tag {tag!r}")
                return pinned

    def _named(self, uow: UnitOfWork, ref: str, name: str) -> Artifact | uuid.UUID:
        """A tag, a unique version hash prefix or an artifact id."""
        if ARTIFACT_ID.fullmatch(name):
            with contextlib.suppress(NotFoundError):  # may still be a tag so named
                return self._artifacts.get_in(uow, uuid.UUID(name))
        tag = uow.tags.get(name) if TAG_NAME_PATTERN.fullmatch(name) else None
        if tag is not None:
            return tag.target_id
        digits = name.removeprefix(HASH_PREFIX)
        if HEX_PREFIX.fullmatch(digits):
            matches = uow.artifacts.find_by_version_prefix("sha256:" + digits, 2)
            if len(matches) > 1:
                raise ValidationError(f"ambiguous ref {ref!r}: several versions start so")
            if matches:
                return matches[0]
        raise NotFoundError(
            f"no tag, version hash (at least {MIN_PREFIX} hex characters) or artifact id matches"
        )

    def _as_of(self, uow: UnitOfWork, tag: str, instant: datetime) -> uuid.UUID:
        """Where ``tag`` pointed at ``instant``."""
        move = uow.tags.move_as_of(tag, stored(instant))
        when = instant.isoformat()
        if move is None:
            raise NotFoundError(f"tag {tag!r} did not exist at {when}")
        if move.to_target_id is None:
            raise NotFoundError(f"tag {tag!r} was deleted at {when}")
        return move.to_target_id

    def _run(self, uow: UnitOfWork, run_id: str, ref: str) -> Run:
        """Run ``run_id``, or the one run whose id starts so (with at least
        ``MIN_RUN_PREFIX`` characters, as the Dagster UI shows ids)."""
        run = uow.runs.get(run_id)
        if run is None and len(run_id) >= MIN_RUN_PREFIX:
            matches = uow.runs.find_by_prefix(run_id, 2)
            if len(matches) > 1:
                raise ValidationError(f"ambiguous run id prefix {run_id!r} in {ref!r}")
            run = matches[0] if matches else None
        if run is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return run
