"""Workflow commits: DAG documents and patches recorded as versions, and their tag moved."""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from core.dag import (
    EMPTY_DAG,
    apply_patch,
    canonical_json,
    make_patch,
    validate_dag,
    validate_patch,
)
from core.domain import Artifact, CreateWorkflowRequest, CreateWorkflowResponse
from core.errors import ConflictError, NotFoundError, ValidationError
from core.identifiers import (
    check_actor,
    check_artifact_name,
    check_reason,
    check_revision,
    check_run_id,
    check_tag_name,
)
from core.repository.clock import utc_now
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_creation import ArtifactCreation, PlannedVersion, check_record
from core.service.artifact_resolution import ArtifactResolution
from core.service.cas import CasService
from core.service.tag import MAX_SWAP_ATTEMPTS
from core.service.tag_policies import refuse_direct
from core.storage.commit_record import CommitRecord, Head, HeadMove, RunValue, TagSwap
from core.storage.uow import UnitOfWorkFactory

DEFAULT_COMPACTION_BOUND = 32
"""Patch sets allowed above a ``dag_version`` before a commit writes a full version."""


class _LostRace(Exception):
    """Another writer moved the tag between our read and our compare-and-swap."""


@dataclass(frozen=True)
class Change:
    """A new DAG document to commit, the patch that produced it (if any), and whether it
    differs from the current document."""

    document: dict[str, Any]
    patch: list[dict[str, Any]] | None
    changed: bool


def _differs(current: dict[str, Any] | None, document: dict[str, Any]) -> bool:
    """Whether ``document`` is new content (``1``, ``1.0`` and ``true`` differ)."""
    return current is None or canonical_json(document) != canonical_json(current)


class WorkflowCommits:
    """Store, version and move in one transaction: a new version of the tag's document
    (a patch set, or a full version once the chain reaches the compaction bound)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        artifacts: ArtifactResolution,
        creation: ArtifactCreation,
        cas: CasService,
        *,
        compaction_bound: int = DEFAULT_COMPACTION_BOUND,
    ) -> None:
        self._uow = uow
        self._artifacts = artifacts
        self._creation = creation
        self._cas = cas
        self._compaction_bound = compaction_bound

    def create_workflow(self, request: CreateWorkflowRequest) -> CreateWorkflowResponse:
        """Commit ``request.dag`` as the tag's new version, parented on its current target.

        Content equal to the tag's current document changes nothing (``changed=False``).
        """
        if not isinstance(request, CreateWorkflowRequest):
            raise ValidationError(f"expected a CreateWorkflowRequest, got {request!r}")
        check_tag_name(request.tag)
        check_artifact_name(request.name)
        document = validate_dag(request.dag)

        return self._commit(
            _Commit(
                tag=request.tag,
                change=lambda current: Change(document, None, _differs(current, document)),
                default_reason="create_workflow",
                name=request.name,
                expected_revision=request.expected_revision,
                created_by=request.created_by,
                message=request.message,
                must_exist=False,
            )
        )

    def patch_workflow(
        self,
        tag: str,
        patch: list[dict[str, Any]],
        *,
        expected_revision: int | None = None,
        created_by: str | None = None,
        message: str | None = None,
        run_id: str | None = None,
    ) -> CreateWorkflowResponse:
        """Apply an RFC 6902 patch to the tag's document, record it and move the tag.

        Without ``expected_revision`` a lost race is retried on the new head (a rebase);
        with it, a moved tag is a ``ConflictError``. A patch whose result is not a valid
        DAG changes nothing.
        """
        check_tag_name(tag)
        patch = validate_patch(patch)

        def apply(current: dict[str, Any] | None) -> Change:
            assert current is not None, "patch_workflow requires an existing tag"
            document = validate_dag(apply_patch(current, patch))
            return Change(document, patch, _differs(current, document))

        return self._commit(
            _Commit(
                tag=tag,
                change=apply,
                default_reason="patch_workflow",
                expected_revision=expected_revision,
                created_by=created_by,
                message=message,
                run_id=run_id,
            )
        )

    def update_workflow(
        self,
        tag: str,
        update: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        name: str,
        created_by: str | None = None,
        message: str | None = None,
        run_id: str | None = None,
        blobs: Sequence[tuple[bytes, str]] = (),
    ) -> CreateWorkflowResponse:
        """Read-modify-write: commit ``update(document)`` as a patch on the tag's head.

        ``update`` sees the current document (an empty DAG if the tag does not exist),
        returns a new one without modifying it (sharing the nodes it leaves alone, which
        are not validated again), and is called again on the new head whenever another
        writer moves the tag first. ``blobs`` (content, media type) that the new document
        names are stored with the new version, in the same catalog statement as its own
        content; a document equal to the current one stores nothing (the blobs it names
        are stored already).
        """
        check_tag_name(tag)
        return self._commit(_update(tag, update, name, created_by, message, run_id, blobs))

    def update_in(
        self,
        uow: UnitOfWork,
        tag: str,
        update: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        name: str,
        created_by: str | None = None,
        message: str | None = None,
        run_id: str | None = None,
        blobs: Sequence[tuple[bytes, str]] = (),
        run_values: Sequence[RunValue] = (),
        stage: bool = False,
    ) -> CreateWorkflowResponse:
        """A step: ``update_workflow`` in ``uow``, tried once (``ConflictError`` when
        another writer moved the tag first: the caller retries the whole unit of work).
        ``run_values`` (what run ``run_id`` read and wrote) are recorded with the commit,
        changed or not. ``stage`` commits on run ``run_id``'s staged head instead of
        ``tag`` (its revision is then the head's)."""
        check_tag_name(tag)
        commit = replace(
            _update(tag, update, name, created_by, message, run_id, blobs),
            run_values=tuple(run_values),
            stage_on=run_id if stage else None,
        )
        _check_commit(commit)
        try:
            return self._attempt(uow, commit)
        except _LostRace:
            raise _moved(commit) from None

    def _commit(self, commit: "_Commit") -> CreateWorkflowResponse:
        """``commit`` in a unit of work of its own; without an expected revision a lost
        race is retried on the new head."""
        _check_commit(commit)
        retry = commit.expected_revision is None
        try:
            return self._uow.run(
                lambda uow: self._attempt(uow, commit),
                lost=_LostRace,
                attempts=MAX_SWAP_ATTEMPTS if retry else 1,
            )
        except _LostRace:
            raise _moved(commit) from None

    def _attempt(self, uow: UnitOfWork, commit: "_Commit") -> CreateWorkflowResponse:
        """One attempt in ``uow``, decided from what it reads and handed to its commit
        store as one record; ``_LostRace`` if another writer moved the tag first,
        ``PolicyError`` if the tag's policy refuses the move (before anything is planned)."""
        head = (
            uow.commits.head(commit.tag)
            if commit.stage_on is None
            else uow.commits.staged_head(commit.stage_on)
        )
        if commit.expected_revision not in (None, head.revision):
            raise ConflictError(
                f"tag {commit.tag!r} is at revision {head.revision}, not the expected "
                f"{commit.expected_revision} (target: {head.target_id})"
            )
        if head.target_id is None and commit.must_exist:
            raise NotFoundError(f"tag {commit.tag!r} not found")
        current = (
            None if head.target_id is None else self._artifacts.resolve_in(uow, head.target_id)
        )
        planned = commit.change(current)
        if head.target_id is not None and not planned.changed:
            repaired = self._cas.stage_missing_in(uow, commit.blobs)
            if repaired or commit.run_values:
                self._apply(uow, commit, CommitRecord(utc_now(), blobs=tuple(repaired)))
            target = self._artifacts.get_in(uow, head.target_id)
            return _response(target, commit, head, False, target.version_hash)
        if commit.stage_on is None:  # staging moves no tag
            what = (
                "a workflow commit" if commit.run_id is None else f"run {commit.run_id!r}'s commit"
            )
            live = head.target_id is not None
            refuse_direct(uow.commits.policies(), commit.tag, live=live, action=what)
        # planned as new unread: the catalog rarely has it, and says so when it does
        version = self._version(uow, commit, planned, head.target_id, current)
        try:
            self._apply(uow, commit, _record(commit, head, version))
        except _LostRace:
            found = self._creation.recorded(uow, version)
            if found is None:
                raise
            version = found
            self._apply(uow, commit, _record(commit, head, version))
        self._creation.remember(uow, version)
        parent = None if head.target_id is None else self._artifacts.get_in(uow, head.target_id)
        return _response(version.target, commit, head, True, parent and parent.version_hash)

    def _apply(self, uow: UnitOfWork, commit: "_Commit", record: CommitRecord) -> None:
        """Hand ``record`` (with the run's values of ``commit``) to ``uow``'s store."""
        if commit.run_values:
            record = replace(record, run_id=commit.run_id, run_values=commit.run_values)
        if uow.commits.apply(record) is None:
            raise _LostRace

    def _version(
        self,
        uow: UnitOfWork,
        commit: "_Commit",
        planned: Change,
        parent_id: uuid.UUID | None,
        parent_document: dict[str, Any] | None,
    ) -> PlannedVersion:
        """A patch set, or a full version when there is no head or the chain is long,
        planned as new (not looked up: see ``ArtifactCreation.recorded``)."""
        metadata = {"message": commit.message} if commit.message else None
        name = commit.name
        if name is None:
            assert parent_id is not None, "a patch always has a head to name it after"
            name = self._artifacts.get_in(uow, parent_id).name
        metadata_json = check_record(name, commit.created_by, metadata)
        if (
            planned.patch is not None
            and parent_id is not None
            and parent_document is not None
            and self._artifacts.patch_depth_in(uow, parent_id) < self._compaction_bound
        ):
            return self._creation.plan_patch_set_in(
                uow,
                name,
                planned.patch,
                parent_id,
                parent_document,
                planned.document,
                commit.created_by,
                metadata_json,
                commit.blobs,
                look_up=False,
            )
        return self._creation.plan_dag_version_in(
            uow,
            name,
            planned.document,
            parent_id,
            commit.created_by,
            metadata_json,
            commit.blobs,
            look_up=False,
        )


def _record(commit: "_Commit", head: Head, version: PlannedVersion) -> CommitRecord:
    """The record of ``commit`` moving the tag (or the run's staged head) from ``head``
    to ``version``."""
    record = CommitRecord(version.at, blobs=version.blobs, version=version.new)
    if commit.stage_on is not None:
        staged = HeadMove(commit.stage_on, head.target_id, head.revision, version.target.id)
        return replace(record, staged=staged)
    swap = TagSwap(
        tag=commit.tag,
        from_target_id=head.target_id,
        expected_revision=head.revision,
        to_target_id=version.target.id,
        target_kind=version.target.kind,
        moved_by=commit.created_by,
        reason=commit.message or commit.default_reason,
        run_id=commit.run_id,
    )
    return replace(record, swap=swap)


def _response(
    target: Artifact, commit: "_Commit", head: Head, changed: bool, from_version: str | None
) -> CreateWorkflowResponse:
    return CreateWorkflowResponse(
        target.id,
        target.version_hash,
        target.cas_id,
        commit.tag,
        head.revision + 1 if changed else head.revision,
        changed=changed,
        from_target_id=head.target_id,
        from_version_hash=from_version,
    )


def _check_commit(commit: "_Commit") -> None:
    check_actor(commit.created_by, "created_by")
    check_reason(commit.message, "message")
    if commit.name is not None:
        check_artifact_name(commit.name)
    if commit.run_id is not None:
        check_run_id(commit.run_id)
    check_revision(commit.expected_revision)


def _moved(commit: "_Commit") -> ConflictError:
    expected = commit.expected_revision
    return ConflictError(
        f"tag {commit.tag!r} moved while it was being committed"
        + (f" (expected revision {expected})" if expected is not None else "")
    )


def _update(
    tag: str,
    update: Callable[[dict[str, Any]], dict[str, Any]],
    name: str,
    created_by: str | None,
    message: str | None,
    run_id: str | None,
    blobs: Sequence[tuple[bytes, str]],
) -> "_Commit":
    """The commit of ``update_workflow``."""

    def change(current: dict[str, Any] | None) -> Change:
        base = EMPTY_DAG if current is None else current
        document = validate_dag(update(base), base=base)
        if current is None:
            return Change(document, None, changed=True)
        patch = make_patch(current, document)
        return Change(document, patch, changed=bool(patch))

    return _Commit(
        tag=tag,
        change=change,
        default_reason="update_workflow",
        name=name,
        created_by=created_by,
        message=message,
        run_id=run_id,
        must_exist=False,
        blobs=blobs,
    )


@dataclass(frozen=True)
class _Commit:
    """What a workflow commit wants: which tag, under which expectation, what change."""

    tag: str
    change: Callable[[dict[str, Any] | None], Change]
    default_reason: str
    name: str | None = None
    expected_revision: int | None = None
    created_by: str | None = None
    message: str | None = None
    run_id: str | None = None
    must_exist: bool = True
    blobs: Sequence[tuple[bytes, str]] = ()
    """(content, media type) the new document names, stored with its own content."""
    run_values: tuple[RunValue, ...] = ()
    """What run ``run_id`` read and wrote, recorded with the commit."""
    stage_on: str | None = None
    """A ``publish="run"`` run whose staged head the commit moves, instead of the tag."""
