"""Refs: the names users give versions on a command line or over HTTP."""

import contextlib
import re
import uuid

from core.domain import Artifact
from core.errors import NotFoundError, ValidationError
from core.identifiers import MIN_RUN_PREFIX, TAG_NAME_PATTERN, check_run_id, check_tag_name
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution
from core.storage.uow import UnitOfWorkFactory

REFLOG = re.compile(r"(?P<tag>.+)@\{(?P<position>[0-9]+)\}")
"""``TAG@{N}``: ``N`` is ASCII digits (``\\d`` and ``str.isdigit`` also take ``٣``)."""
ARTIFACT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
"""An artifact id as ``str(uuid)`` spells it (32 bare hex digits are a hash prefix)."""
MAX_POSITION = 2**31 - 1
POSITION_DIGITS = len(str(MAX_POSITION))
"""Significant digits past which a position is past any move (``int`` stops at 4300)."""
STAGED = re.compile(r"run:(?P<run_id>.+)")
"""``run:<run id>``: a run's staged head (its base until it stages a value)."""
MIN_PREFIX = 8
HASH_PREFIX = re.compile(rf"(?:sha256:)?(?P<hex>[0-9a-f]{{{MIN_PREFIX},64}})")


class RefService:
    """Resolves a ref to an artifact.

    A ref is a tag (``main``), a previous position of a tag (``main@{1}`` = its target
    before the last move, as in git), a run's staged head (``run:<run id>``, its base
    until it stages a value), a version hash or a unique prefix of at least 8 hex
    characters (``sha256:`` optional), or an artifact id. A live tag wins over a hash
    prefix that happens to spell the same.
    """

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork], artifacts: ArtifactResolution) -> None:
        self._uow = uow
        self._artifacts = artifacts

    def resolve(self, ref: str) -> Artifact:
        if not isinstance(ref, str) or not ref:
            raise ValidationError(f"invalid ref {ref!r}: expected a tag, hash or artifact id")
        if ARTIFACT_ID.fullmatch(ref):
            with contextlib.suppress(NotFoundError):  # may still be a tag of that name
                return self._artifacts.get_by_id(uuid.UUID(ref))
        if reflog := REFLOG.fullmatch(ref):
            return self._position(check_tag_name(reflog["tag"]), reflog["position"])
        if staged := STAGED.fullmatch(ref):
            return self._staged(check_run_id(staged["run_id"]))
        with self._uow() as uow:
            found = self._find(uow, ref)
            uow.commit()
        if found is not None:
            return found
        if not TAG_NAME_PATTERN.fullmatch(ref) and not HASH_PREFIX.fullmatch(ref):
            raise ValidationError(
                f"invalid ref {ref!r}: expected a tag, TAG@{{N}}, run:<run id>, a version "
                f"hash (or its first {MIN_PREFIX}+ hex characters) or an artifact id"
            )
        raise NotFoundError(
            f"unknown ref {ref!r}: no tag, version hash (at least {MIN_PREFIX} hex characters) "
            "or artifact id matches"
        )

    def _find(self, uow: UnitOfWork, ref: str) -> Artifact | None:
        """The artifact a live tag or a unique version hash prefix ``ref`` names."""
        tag = uow.tags.get(ref) if TAG_NAME_PATTERN.fullmatch(ref) else None
        if tag is not None:
            return self._artifacts.get_in(uow, tag.target_id)
        if prefix := HASH_PREFIX.fullmatch(ref):
            matches = uow.artifacts.find_by_version_prefix("sha256:" + prefix["hex"], 2)
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ValidationError(f"ambiguous ref {ref!r}: several versions start so")
        return None

    def _staged(self, run_id: str) -> Artifact:
        """The version run ``run_id`` (or the one run whose id starts so, with at least
        ``MIN_RUN_PREFIX`` characters) staged last, else its base."""
        with self._uow() as uow:
            run = uow.runs.get(run_id)
            if run is None and len(run_id) >= MIN_RUN_PREFIX:  # as the Dagster UI shows ids
                matches = uow.runs.find_by_prefix(run_id, 2)
                if len(matches) > 1:
                    raise ValidationError(f"ambiguous run id prefix {run_id!r} in run:{run_id}")
                run = matches[0] if matches else None
            if run is None:
                raise NotFoundError(f"run {run_id!r} not found")
            target = run.head_id or run.base_id
            if target is None:
                raise NotFoundError(f"run {run_id!r} has staged nothing, and has no base")
            artifact = self._artifacts.get_in(uow, target)
            uow.commit()
        return artifact

    def _position(self, tag: str, digits: str) -> Artifact:
        """The artifact ``tag`` pointed at ``digits`` (ASCII) moves before its last."""
        position = _number(digits)
        with self._uow() as uow:
            move = uow.tags.move_at(tag, position) if position <= MAX_POSITION else None
            if move is None:
                raise NotFoundError(f"tag {tag!r} has no position @{{{digits}}}")
            if move.to_target_id is None:
                raise NotFoundError(f"tag {tag!r} was deleted at position @{{{digits}}}")
            artifact = self._artifacts.get_in(uow, move.to_target_id)
            uow.commit()
        return artifact


def _number(digits: str) -> int:
    """The ASCII ``digits`` of a position as an int; one too long to parse is past
    ``MAX_POSITION`` (so names no move)."""
    significant = digits.lstrip("0") or "0"
    return MAX_POSITION + 1 if len(significant) > POSITION_DIGITS else int(significant)
