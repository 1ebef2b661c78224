"""Merging versions into a tag: fast-forward, or a three-way merge recorded as a merge
version (a full version on the tag's target whose second parent is what it merged)."""

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from core.dag import canonical_json, changed_nodes, validate_dag
from core.domain import Artifact, ArtifactKind, MergeResult, TagPolicy
from core.errors import ConflictError, MergeConflictError, ValidationError
from core.identifiers import check_artifact_id, check_tag_name
from core.merge import Conflict, changed_between, cut_to, merge_documents
from core.repository.clock import utc_now
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_creation import ArtifactCreation, PlannedVersion, check_record
from core.service.artifact_resolution import ArtifactResolution
from core.service.ref import RefService
from core.service.tag import MAX_SWAP_ATTEMPTS
from core.service.tag_moves import check_move_fields
from core.service.tag_policies import governing, refuse_landing
from core.storage.commit_record import CommitRecord, Head, TagSwap
from core.storage.uow import UnitOfWorkFactory

ANCESTRY_LIMIT = 100_000
"""Versions looked at, on each side, for the nearest common ancestor."""


class LostRace(Exception):
    """The tag moved between our read and our compare-and-swap."""


@dataclass(frozen=True)
class MergePreview:
    """What merging would do: fast-forward or not, the nodes it would change on the tag,
    and the conflicts (node, partition key) that would stop it."""

    tag: str
    from_target_id: uuid.UUID | None
    source_id: uuid.UUID
    fast_forward: bool
    changed: bool
    changed_nodes: frozenset[str]
    conflicts: tuple[Conflict, ...]


@dataclass(frozen=True)
class _Plan:
    """A merge decided: the version the tag moves to (``None``: it stays)."""

    target: Artifact | None
    fast_forward: bool
    changed_nodes: frozenset[str]
    conflicts: tuple[Conflict, ...]
    merge_version: PlannedVersion | None = None
    changes: bool = False
    """Whether the tag would move (``target`` is set only when ``write``)."""
    document: dict[str, Any] | None = None
    """The merge version's document (``None`` unless there is one)."""


@dataclass(frozen=True)
class Incoming:
    """What a merge brings in, read before the tag is locked: the merge base's document
    (``None``: no base), the source's, and the nodes the source changed from the base."""

    base: uuid.UUID | None
    source_id: uuid.UUID
    old: dict[str, Any] | None
    theirs: dict[str, Any]
    changed: frozenset[str]

    def to_json(self) -> str:
        """The documents cut down to the changed nodes (all a merge reads of them), as
        JSON for ``from_json``."""
        changed = sorted(self.changed)
        cut = [cut_to(self.old, changed), cut_to(self.theirs, changed), changed]
        return canonical_json(cut).decode()

    @classmethod
    def from_json(cls, base: uuid.UUID | None, source_id: uuid.UUID, text: str) -> "Incoming":
        old, theirs, changed = json.loads(text)
        return cls(base, source_id, old, theirs, frozenset(changed))


@dataclass(frozen=True)
class Landing:
    """A move decided (``Merges.landing``): the tag's compare-and-swap, the merge
    version it moves to (``None``: a fast-forward to a version that exists) and what
    ``Merges.land`` returns once it is applied."""

    swap: TagSwap
    version: PlannedVersion | None
    result: MergeResult
    document: dict[str, Any] | None = None
    """The merge version's document, for a next merge onto it (``None``: not kept)."""

    @property
    def record(self) -> CommitRecord:
        version = self.version
        if version is None:
            return CommitRecord(utc_now(), swap=self.swap)
        return CommitRecord(version.at, blobs=version.blobs, version=version.new, swap=self.swap)

    @property
    def head(self) -> Head:
        """The tag once the move lands."""
        return Head(self.swap.to_target_id, self.result.revision)


class Merges:
    """Three-way merges of versions into tags, value by value (``core.merge``)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        artifacts: ArtifactResolution,
        creation: ArtifactCreation,
        refs: RefService,
        *,
        compaction_bound: int,
    ) -> None:
        self._uow = uow
        self._artifacts = artifacts
        self._creation = creation
        self._refs = refs
        self._compaction_bound = compaction_bound

    def merge(
        self,
        source: str,
        into: str,
        *,
        expected_target_id: uuid.UUID | None = None,
        moved_by: str | None = None,
        reason: str | None = None,
    ) -> MergeResult:
        """Merge the version ``source`` (any ref) into tag ``into``: a fast-forward when
        ``into`` is an ancestor of it, else a merge version with the nearest common
        ancestor as merge base; nothing when ``into`` has it already. Conflicts are a
        ``MergeConflictError`` and move nothing; with ``expected_target_id`` a tag that
        moved is a ``ConflictError``."""
        check_tag_name(into)
        check_move_fields(moved_by, reason, None)
        if expected_target_id is not None:
            check_artifact_id(expected_target_id)
        source_id = _mergeable(self._refs.resolve(source), source).id
        why = reason or f"merge {source}"

        def attempt(uow: UnitOfWork) -> MergeResult:
            locked = uow.tags.lock(into)  # decide on a tag nobody moves meanwhile
            head = uow.commits.head(into) if locked is None else Head(*locked)
            if expected_target_id is not None and head.target_id != expected_target_id:
                raise ConflictError(
                    f"tag {into!r} points at {head.target_id}, not the expected "
                    f"{expected_target_id}"
                )
            base = self.merge_base(uow, head.target_id, source_id)
            landing = self.landing(
                uow, into, head, base, source_id, moved_by, why, None, repr(source)
            )
            return self.land(uow, into, head, landing)

        try:
            result: MergeResult = self._uow.run(attempt, lost=LostRace, attempts=MAX_SWAP_ATTEMPTS)
        except LostRace:
            raise ConflictError(f"tag {into!r} kept moving while {source!r} merged") from None
        return result

    def preview(self, source: str, into: str) -> MergePreview:
        """What ``merge(source, into)`` would do now, conflicts included (and the
        ``PolicyError`` of an immutable ``into`` it would move); nothing moves."""
        check_tag_name(into)
        source_id = _mergeable(self._refs.resolve(source), source).id
        with self._uow() as uow:
            head = uow.commits.head(into)
            base = self.merge_base(uow, head.target_id, source_id)
            plan = self._plan(uow, into, head, base, source_id, None, write=False)
            if head.target_id is not None and (plan.changes or plan.conflicts):
                refuse_landing(
                    uow.commits.policies(), into, live=True, action=f"merging {source!r}"
                )
            uow.commit()
        return MergePreview(
            into, head.target_id, source_id, plan.fast_forward, plan.changes,
            plan.changed_nodes, plan.conflicts,
        )  # fmt: skip

    def incoming(self, uow: UnitOfWork, base: uuid.UUID | None, source_id: uuid.UUID) -> Incoming:
        """A step: what merging ``source_id`` over ``base`` brings in (none of it
        depends on the tag, so it can be read before the tag is locked)."""
        theirs = self._artifacts.resolve_in(uow, source_id)
        old = None if base is None else self._artifacts.resolve_in(uow, base)
        return Incoming(base, source_id, old, theirs, changed_between(old, theirs))

    def merge_base(
        self, uow: UnitOfWork, ours: uuid.UUID | None, theirs: uuid.UUID
    ) -> uuid.UUID | None:
        """The nearest common ancestor of two versions, through parents and merged
        versions (``None``: they share none)."""
        if ours is None:
            return None
        mine = uow.artifacts.ancestors(ours, ANCESTRY_LIMIT)
        others = uow.artifacts.ancestors(theirs, ANCESTRY_LIMIT)
        common = mine.keys() & others.keys()
        if not common:
            return None
        return min(common, key=lambda a: (others[a] + mine[a], others[a], str(a)))

    def land(self, uow: UnitOfWork, tag: str, head: Head, landing: Landing | None) -> MergeResult:
        """A step: apply ``landing`` (``self.landing(...)`` for ``tag`` at ``head``; ``None``:
        nothing moves) as one compare-and-swap. ``LostRace`` when the tag moved meanwhile."""
        if landing is None:
            return MergeResult(tag, head.target_id, head.target_id, head.revision, False, False)
        swap, version = landing.swap, landing.version
        if uow.commits.apply(landing.record) is None:
            found = None if version is None else self._creation.recorded(uow, version)
            if found is None:
                raise LostRace
            version, swap = found, replace(swap, to_target_id=found.target.id)
            if uow.commits.apply(CommitRecord(found.at, blobs=found.blobs, swap=swap)) is None:
                raise LostRace
        if version is not None:
            self._creation.remember(uow, version)
        return replace(landing.result, to_target_id=swap.to_target_id)

    def landing(
        self,
        uow: UnitOfWork,
        tag: str,
        head: Head,
        base: uuid.UUID | None,
        source_id: uuid.UUID,
        moved_by: str | None,
        reason: str,
        run_id: str | None,
        label: str,
        *,
        incoming: Incoming | None = None,
        policies: tuple[TagPolicy, ...] | None = None,
        ours: dict[str, Any] | None = None,
    ) -> Landing | None:
        """A step: the move of ``tag`` (at ``head``) to hold ``source_id`` merged over
        ``base``, decided and its merge version's file written, nothing recorded; ``None``
        when the tag holds it already. ``MergeConflictError`` naming the conflicts;
        ``PolicyError`` when the tag is immutable (and this would move it).
        ``incoming`` (``self.incoming(uow, base, source_id)``), ``policies`` (every
        tag policy) and ``ours`` (the tag's document, which the merge leaves unchanged),
        when the caller has them already, are not read again."""
        if policies is None:
            policies = uow.commits.policies()
        policy = governing(policies, tag)
        if policy is not None and policy.immutable and head.target_id is not None:
            preview = self._plan(uow, tag, head, base, source_id, moved_by, write=False)
            if preview.changes or preview.conflicts:
                what = f"publishing {label}" if run_id is not None else f"merging {label}"
                refuse_landing(policies, tag, live=True, action=what)
            return None
        plan = self._plan(
            uow, tag, head, base, source_id, moved_by, write=True, incoming=incoming, ours=ours
        )
        if plan.conflicts:
            names = ", ".join(f"{n}[{k}]" if k is not None else n for n, k in plan.conflicts)
            raise MergeConflictError(
                f"merging {label} into tag {tag!r} conflicts on {names}: both sides "
                "changed them differently; nothing moved",
                list(plan.conflicts),
            )
        if plan.target is None:
            return None
        swap = TagSwap(
            tag=tag,
            from_target_id=head.target_id,
            expected_revision=head.revision,
            to_target_id=plan.target.id,
            target_kind=plan.target.kind,
            moved_by=moved_by,
            reason=reason,
            run_id=run_id,
        )
        result = MergeResult(
            tag, head.target_id, plan.target.id, head.revision + 1, plan.fast_forward, True
        )
        return Landing(swap, plan.merge_version, result, plan.document)

    def _plan(
        self,
        uow: UnitOfWork,
        tag: str,
        head: Head,
        base: uuid.UUID | None,
        source_id: uuid.UUID,
        moved_by: str | None,
        *,
        write: bool,
        incoming: Incoming | None = None,
        ours: dict[str, Any] | None = None,
    ) -> _Plan:
        """The merge of ``source_id`` into ``tag``; ``write``: with its merge version
        planned (its file written), else only what it would change. Only the nodes the
        source changed are merged and checked when ``incoming`` names them."""
        source = self._artifacts.get_in(uow, source_id)
        if head.target_id == source_id or base == source_id:
            return _Plan(None, False, frozenset(), ())  # the tag holds it already
        if head.target_id is None or base == head.target_id:
            if write:  # a fast-forward: nothing to merge
                return _Plan(source, True, frozenset(), (), changes=True)
            theirs = self._artifacts.resolve_in(uow, source_id)
            ours = {} if head.target_id is None else self._artifacts.resolve_in(uow, head.target_id)
            return _Plan(source, True, changed_nodes(ours, theirs), (), changes=True)
        if incoming is None or (incoming.base, incoming.source_id) != (base, source_id):
            incoming = None
            theirs = self._artifacts.resolve_in(uow, source_id)
            old = None if base is None else self._artifacts.resolve_in(uow, base)
        else:
            theirs, old = incoming.theirs, incoming.old
        if ours is None:
            ours = self._artifacts.resolve_in(uow, head.target_id)
        merged, conflicts = merge_documents(
            old, ours, theirs, theirs_changed=None if incoming is None else incoming.changed
        )
        if conflicts:
            return _Plan(None, False, frozenset(), tuple(conflicts))
        # a merge of what ``incoming`` names changes no other node (the same objects)
        among = None if incoming is None else incoming.changed
        changes = changed_nodes(ours, merged, among=among)
        if not changes and _fields(merged) == _fields(ours):  # the tag holds it all already
            return _Plan(None, False, frozenset(), ())
        try:
            document = validate_dag(merged, base=ours, among=changes)
        except ValidationError as exc:
            conflict = tuple((node, None) for node in sorted(changes))
            raise MergeConflictError(
                f"merging {source_id} into tag {tag!r} makes no valid DAG ({exc}); nothing moved",
                list(conflict),
            ) from None
        if not write:
            return _Plan(None, False, changes, (), changes=True)
        current = self._artifacts.get_in(uow, head.target_id)
        version = self._creation.plan_merge_in(
            uow,
            current.name,
            document,
            head.target_id,
            ours,
            source_id,
            moved_by,
            check_record(current.name, moved_by, {"message": f"merge {source.version_hash}"}),
            changes,
            compaction_bound=self._compaction_bound,
            look_up=False,  # planned as new unread: see ``ArtifactCreation.recorded``
        )
        return _Plan(version.target, False, changes, (), version, changes=True, document=document)


def _fields(document: dict[str, Any]) -> bytes:
    """A document's fields other than its nodes, as canonical JSON."""
    return canonical_json({key: value for key, value in document.items() if key != "nodes"})


def _mergeable(artifact: Artifact, ref: str) -> Artifact:
    """A version of a DAG (a run snapshot is no content to merge)."""
    if artifact.kind is ArtifactKind.RUN_SNAPSHOT:
        raise ValidationError(
            f"{ref!r} names a run snapshot, not a version of a DAG: nothing to merge"
        )
    return artifact
