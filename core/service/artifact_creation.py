"""Creating artifacts: DAG versions, patch sets and run snapshots, idempotently."""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.dag import (
    DAG_MEDIA_TYPE,
    PATCH_MEDIA_TYPE,
    SNAPSHOT_MEDIA_TYPE,
    added_cas_ids,
    apply_patch,
    canonical_json,
    make_patch,
    referenced_cas_ids,
    sha256_id,
    validate_dag,
    validate_patch,
)
from core.domain import Artifact, ArtifactKind
from core.errors import IntegrityError, NotFoundError, ValidationError
from core.identifiers import check_actor, check_artifact_id, check_artifact_name
from core.repository.clock import aware, utc_now
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution, Resolved
from core.service.cas import CasService
from core.storage.commit_record import BlobEntry, CommitRecord, NewVersion
from core.storage.uow import UnitOfWorkFactory


def version_hash(
    kind: ArtifactKind,
    cas_id: str,
    parent_version_hash: str | None,
    merged_version_hash: str | None = None,
) -> str:
    """Same kind, content and parents give the same hash, in any catalog."""
    fields: dict[str, Any] = {"kind": kind.value, "cas_id": cas_id, "parent": parent_version_hash}
    if merged_version_hash is not None:
        fields["merged"] = merged_version_hash
    return sha256_id(canonical_json(fields))


def check_record(name: object, created_by: object, metadata: object) -> str:
    """Check what an artifact row records besides its content; its metadata as JSON."""
    check_artifact_name(name)
    check_actor(created_by)
    if metadata is not None and not isinstance(metadata, dict):
        raise ValidationError(f"artifact metadata must be a JSON object, got {metadata!r}")
    return canonical_json(metadata or {}).decode()


class ArtifactCreation:
    """Records artifacts; the same kind, content and parent give back the same one."""

    def __init__(
        self, uow: UnitOfWorkFactory[UnitOfWork], cas: CasService, found: ArtifactResolution
    ) -> None:
        self._uow = uow
        self._cas = cas
        self._found = found

    def create_dag_version(
        self,
        name: str,
        cas_id: str,
        *,
        parent_id: uuid.UUID | None = None,
        created_by: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        """Record the DAG document stored at ``cas_id`` as a version (validated first)."""
        metadata_json = check_record(name, created_by, metadata)
        document = validate_dag(self._found.load_json(cas_id))
        with self._uow() as uow:
            planned = self._plan(
                uow, ArtifactKind.DAG_VERSION, name, cas_id, parent_id, created_by,
                metadata_json, refs=referenced_cas_ids(document),
                resolved=Resolved(canonical_json(document), 0),
            )  # fmt: skip
            artifact_id = self.record_in(uow, planned)
            uow.commit()
        return artifact_id

    def add_dag_version(
        self,
        name: str,
        document: dict[str, Any],
        *,
        parent_id: uuid.UUID | None = None,
        created_by: str | None = None,
        metadata: dict[str, Any] | None = None,
        blobs: Sequence[tuple[bytes, str]] = (),
    ) -> uuid.UUID:
        """Store ``document`` and record it as a version, for a caller that has already
        validated it (nothing is read back). ``blobs`` (content, media type) that the
        document names are stored with it, all or nothing."""
        metadata_json = check_record(name, created_by, metadata)  # before any file is written
        with self._uow() as uow:
            artifact_id = self.add_dag_version_in(
                uow, name, document, parent_id, created_by, metadata_json, blobs
            )
            uow.commit()
        return artifact_id

    def add_dag_version_in(
        self,
        uow: UnitOfWork,
        name: str,
        document: dict[str, Any],
        parent_id: uuid.UUID | None,
        created_by: str | None,
        metadata_json: str,
        blobs: Sequence[tuple[bytes, str]] = (),
    ) -> uuid.UUID:
        """A step: ``add_dag_version`` in ``uow`` (``metadata_json`` from ``check_record``)."""
        planned = self.plan_dag_version_in(
            uow, name, document, parent_id, created_by, metadata_json, blobs
        )
        return self.record_in(uow, planned)

    def plan_dag_version_in(
        self,
        uow: UnitOfWork,
        name: str,
        document: dict[str, Any],
        parent_id: uuid.UUID | None,
        created_by: str | None,
        metadata_json: str,
        blobs: Sequence[tuple[bytes, str]] = (),
        *,
        merged_id: uuid.UUID | None = None,
        look_up: bool = True,
    ) -> "PlannedVersion":
        """A step: the version ``add_dag_version_in`` would record (a merge version when
        ``merged_id`` names what it merged, whose values all come from versions the
        catalog holds, so they are not looked up), its files written for ``uow`` and
        nothing recorded yet; ``look_up`` as in ``_plan``."""
        content = canonical_json(document)
        staged = self._cas.stage_in(uow, [(content, DAG_MEDIA_TYPE), *blobs])
        return self._plan(
            uow,
            ArtifactKind.DAG_VERSION,
            name,
            staged[0].cas_id,
            parent_id,
            created_by,
            metadata_json,
            refs=referenced_cas_ids(document),
            staged=staged,
            resolved=Resolved(content, 0),
            merged_id=merged_id,
            refs_known=merged_id is not None,
            look_up=look_up,
        )

    def plan_merge_in(
        self,
        uow: UnitOfWork,
        name: str,
        document: dict[str, Any],
        parent_id: uuid.UUID,
        parent_document: dict[str, Any],
        merged_id: uuid.UUID,
        created_by: str | None,
        metadata_json: str,
        changes: frozenset[str],
        *,
        compaction_bound: int,
        look_up: bool = True,
    ) -> "PlannedVersion":
        """A step: a merge version of ``document`` on ``parent_id`` that also records
        ``merged_id`` (what it merged) as its second parent: a patch set on the parent, or
        a full version once the parent's patch chain reaches ``compaction_bound``; its
        file written for ``uow``; ``look_up`` as in ``_plan``. ``changes`` names the nodes
        ``document`` changed from ``parent_document`` (the others are the same objects)."""
        if self._found.patch_depth_in(uow, parent_id) < compaction_bound:
            patch = make_patch(parent_document, document, among=changes)
            staged = self._cas.stage_in(uow, [(canonical_json(patch), PATCH_MEDIA_TYPE)])
            return self._patch_set(
                uow, name, staged[0].cas_id, parent_id, parent_document, document, created_by,
                metadata_json, staged, merged_id=merged_id, look_up=look_up, private=True,
                changes=changes,
            )  # fmt: skip
        return self.plan_dag_version_in(
            uow, name, document, parent_id, created_by, metadata_json, merged_id=merged_id,
            look_up=look_up,
        )  # fmt: skip

    def create_patch_set(
        self,
        name: str,
        cas_id: str,
        *,
        parent_id: uuid.UUID,
        created_by: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        """Record the JSON Patch at ``cas_id`` against ``parent_id``; it must yield a DAG."""
        if parent_id is None:
            raise ValidationError("a patch set needs a parent_id")
        metadata_json = check_record(name, created_by, metadata)
        patch = validate_patch(self._found.load_json(cas_id))
        with self._uow() as uow:
            parent_document = self._found.resolve_in(uow, parent_id)
            document = validate_dag(apply_patch(parent_document, patch))
            planned = self._patch_set(
                uow, name, cas_id, parent_id, parent_document, document, created_by,
                metadata_json,
            )  # fmt: skip
            artifact_id = self.record_in(uow, planned)
            uow.commit()
        return artifact_id

    def add_patch_set(
        self,
        name: str,
        patch: list[dict[str, Any]],
        *,
        parent_id: uuid.UUID,
        parent_document: dict[str, Any],
        document: dict[str, Any],
        created_by: str | None = None,
        metadata: dict[str, Any] | None = None,
        blobs: Sequence[tuple[bytes, str]] = (),
    ) -> uuid.UUID:
        """Store ``patch`` and record it against ``parent_id``, for a caller that has
        already checked it: ``parent_document`` is ``resolve(parent_id)`` and ``document``
        the valid DAG that ``patch`` makes of it. Nothing is read back or checked again.
        ``blobs`` (content, media type) that the patch names are stored with it.
        """
        metadata_json = check_record(name, created_by, metadata)  # before any file is written
        with self._uow() as uow:
            artifact_id = self.add_patch_set_in(
                uow, name, patch, parent_id, parent_document, document, created_by,
                metadata_json, blobs,
            )  # fmt: skip
            uow.commit()
        return artifact_id

    def add_patch_set_in(
        self,
        uow: UnitOfWork,
        name: str,
        patch: list[dict[str, Any]],
        parent_id: uuid.UUID,
        parent_document: dict[str, Any],
        document: dict[str, Any],
        created_by: str | None,
        metadata_json: str,
        blobs: Sequence[tuple[bytes, str]] = (),
    ) -> uuid.UUID:
        """A step: ``add_patch_set`` in ``uow`` (``metadata_json`` from ``check_record``)."""
        planned = self.plan_patch_set_in(
            uow, name, patch, parent_id, parent_document, document, created_by, metadata_json,
            blobs,
        )  # fmt: skip
        return self.record_in(uow, planned)

    def plan_patch_set_in(
        self,
        uow: UnitOfWork,
        name: str,
        patch: list[dict[str, Any]],
        parent_id: uuid.UUID,
        parent_document: dict[str, Any],
        document: dict[str, Any],
        created_by: str | None,
        metadata_json: str,
        blobs: Sequence[tuple[bytes, str]] = (),
        *,
        look_up: bool = True,
    ) -> "PlannedVersion":
        """A step: the patch set ``add_patch_set_in`` would record, its files written
        for ``uow`` and nothing recorded yet; ``look_up`` as in ``_plan``."""
        staged = self._cas.stage_in(uow, [(canonical_json(patch), PATCH_MEDIA_TYPE), *blobs])
        return self._patch_set(
            uow, name, staged[0].cas_id, parent_id, parent_document, document, created_by,
            metadata_json, staged, look_up=look_up,
        )  # fmt: skip

    def _patch_set(
        self,
        uow: UnitOfWork,
        name: str,
        cas_id: str,
        parent_id: uuid.UUID,
        parent_document: dict[str, Any],
        document: dict[str, Any],
        created_by: str | None,
        metadata_json: str,
        staged: Sequence[BlobEntry] = (),
        *,
        merged_id: uuid.UUID | None = None,
        look_up: bool = True,
        private: bool = False,
        changes: frozenset[str] | None = None,
    ) -> "PlannedVersion":
        """``private``: ``document`` is one the catalog made and nobody changes, so it is
        encoded only when read from the cache (a caller's could change after the call).
        ``changes``, when known, names the nodes it changed from ``parent_document``."""
        depth = self._found.patch_depth_in(uow, parent_id) + 1
        if private:
            resolved = Resolved.of(document, depth)
        else:
            resolved = Resolved(canonical_json(document), depth)
        return self._plan(
            uow,
            ArtifactKind.PATCH_SET,
            name,
            cas_id,
            parent_id,
            created_by,
            metadata_json,
            # the values this patch brings in (its ancestors hold the rest, and stay)
            refs=added_cas_ids(parent_document, document, among=changes),
            staged=staged,
            resolved=resolved,
            merged_id=merged_id,
            refs_known=merged_id is not None,
            look_up=look_up,
        )

    def create_run_snapshot(
        self,
        name: str,
        cas_id: str,
        *,
        parent_id: uuid.UUID | None = None,
        created_by: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> uuid.UUID:
        """Record the run snapshot document at ``cas_id``, pinned to ``parent_id``."""
        metadata_json = check_record(name, created_by, metadata)
        if not isinstance(self._found.load_json(cas_id), dict):
            raise ValidationError(f"run snapshot content {cas_id} must be a JSON object")
        with self._uow() as uow:
            planned = self._plan(
                uow, ArtifactKind.RUN_SNAPSHOT, name, cas_id, parent_id, created_by, metadata_json
            )
            artifact_id = self.record_in(uow, planned)
            uow.commit()
        return artifact_id

    def add_run_snapshot(
        self,
        name: str,
        snapshot: dict[str, Any],
        *,
        parent_id: uuid.UUID | None = None,
        created_by: str | None = None,
    ) -> uuid.UUID:
        """Store the run snapshot document ``snapshot`` and record it, pinned to
        ``parent_id`` (nothing is read back)."""
        metadata_json = check_record(name, created_by, None)  # before the file is written
        with self._uow() as uow:
            artifact_id = self.add_run_snapshot_in(
                uow, name, snapshot, parent_id, created_by, metadata_json
            )
            uow.commit()
        return artifact_id

    def add_run_snapshot_in(
        self,
        uow: UnitOfWork,
        name: str,
        snapshot: dict[str, Any],
        parent_id: uuid.UUID | None,
        created_by: str | None,
        metadata_json: str,
    ) -> uuid.UUID:
        """A step: ``add_run_snapshot`` in ``uow`` (``metadata_json`` from ``check_record``)."""
        staged = self._cas.stage_in(uow, [(canonical_json(snapshot), SNAPSHOT_MEDIA_TYPE)])
        planned = self._plan(
            uow, ArtifactKind.RUN_SNAPSHOT, name, staged[0].cas_id, parent_id, created_by,
            metadata_json, staged=staged,
        )  # fmt: skip
        return self.record_in(uow, planned)

    def _plan(
        self,
        uow: UnitOfWork,
        kind: ArtifactKind,
        name: str,
        cas_id: str,
        parent_id: uuid.UUID | None,
        created_by: str | None,
        metadata_json: str,
        *,
        refs: frozenset[str] = frozenset(),
        staged: Sequence[BlobEntry] = (),
        resolved: Resolved | None = None,
        merged_id: uuid.UUID | None = None,
        refs_known: bool = False,
        look_up: bool = True,
    ) -> "PlannedVersion":
        """The version of ``cas_id`` on ``parent_id`` (and ``merged_id``): the one the
        catalog has with its hash, or a new one to record (name, actor and metadata
        checked by the caller). ``staged`` blobs are recorded with it; every other blob it
        names must be there (looked up unless ``refs_known``: the caller took them all
        from versions the catalog holds). Without ``look_up`` the version is planned as
        new unread: a caller whose commit record then fails asks ``recorded``."""
        unstaged = (refs | {cas_id}) - {blob.cas_id for blob in staged}
        if refs_known:
            unstaged = frozenset()
        missing = uow.commits.missing_blobs(unstaged) if unstaged else frozenset()
        if cas_id in missing:
            raise NotFoundError(f"blob {cas_id} not found in the catalog")
        if missing:
            raise NotFoundError(
                f"{kind} content names blobs that are not in the catalog: "
                + ", ".join(sorted(missing))
            )
        parent = (
            None if parent_id is None else self._found.get_in(uow, check_artifact_id(parent_id))
        )
        merged = None if merged_id is None else self._found.get_in(uow, merged_id)
        digest = version_hash(
            kind, cas_id, parent and parent.version_hash, merged and merged.version_hash
        )
        at = utc_now()
        existing = uow.commits.version_id(digest, parent and parent.id) if look_up else None
        if existing is not None:
            target = self._found.get_in(uow, existing)
            return PlannedVersion(target, None, tuple(staged), resolved, at)
        new = NewVersion(
            id=uuid.uuid4(),
            kind=kind,
            version_hash=digest,
            cas_id=cas_id,
            parent_id=parent and parent.id,
            name=name,
            created_by=created_by,
            metadata_json=metadata_json,
            refs=tuple(sorted(refs)),
            merged_id=merged_id,
        )
        target = Artifact(
            id=new.id,
            kind=kind,
            version_hash=digest,
            cas_id=cas_id,
            parent_id=new.parent_id,
            name=name,
            created_at=aware(at),
            created_by=created_by,
            metadata=json.loads(metadata_json),
            merged_id=merged_id,
        )
        return PlannedVersion(target, new, tuple(staged), resolved, at)

    def recorded(self, uow: UnitOfWork, planned: "PlannedVersion") -> "PlannedVersion | None":
        """A step, once a commit record carrying ``planned.new`` failed: ``planned`` with
        the version the catalog has under its hash as target (the same content on the
        same parents, recorded before), or ``None`` when it has none (the record lost a
        race)."""
        if planned.new is None:
            return None
        existing = uow.commits.version_id(planned.new.version_hash, planned.new.parent_id)
        if existing is None:
            return None
        target = self._found.get_in(uow, existing)
        return PlannedVersion(target, None, planned.blobs, planned.resolved, planned.at)

    def record_in(self, uow: UnitOfWork, planned: "PlannedVersion") -> uuid.UUID:
        """A step: record ``planned`` in ``uow`` alone (no tag moves); its id."""
        record = CommitRecord(planned.at, blobs=planned.blobs, version=planned.new)
        if uow.commits.apply(record) is None:  # another writer recorded it meanwhile
            assert planned.new is not None
            existing = uow.commits.version_id(planned.new.version_hash)
            if existing is None:
                raise IntegrityError(f"artifact {planned.new.version_hash} vanished while created")
            return existing
        self.remember(uow, planned)
        return planned.target.id

    def remember(self, uow: UnitOfWork, planned: "PlannedVersion") -> None:
        """Once ``uow`` recorded ``planned``: cache the version when it commits."""
        if planned.new is not None:
            self._found.by_id.put(planned.target.id, planned.target, uow)
        if planned.resolved is not None:
            self._found.resolved.put(planned.target.id, planned.resolved, uow)


@dataclass(frozen=True)
class PlannedVersion:
    """A version a commit moves to: ``new`` to record, or ``None`` when ``target`` is
    there already; the blobs to record with it; its document, when known, to cache."""

    target: Artifact
    new: NewVersion | None
    blobs: tuple[BlobEntry, ...]
    resolved: Resolved | None
    at: datetime
