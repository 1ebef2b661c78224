"""Creating artifacts: DAG versions, patch sets and run snapshots, idempotently."""

import uuid
from collections.abc import Sequence
from typing import Any

from core.dag import (
    DAG_MEDIA_TYPE,
    PATCH_MEDIA_TYPE,
    SNAPSHOT_MEDIA_TYPE,
    added_cas_ids,
    apply_patch,
    canonical_json,
    referenced_cas_ids,
    sha256_id,
    validate_dag,
    validate_patch,
)
from core.domain import ArtifactKind
from core.errors import IntegrityError, NotFoundError, ValidationError
from core.identifiers import check_actor, check_artifact_id, check_artifact_name
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact_resolution import ArtifactResolution, Resolved
from core.service.cas import CasService
from core.storage.uow import UnitOfWorkFactory


def version_hash(kind: ArtifactKind, cas_id: str, parent_version_hash: str | None) -> str:
    """Same kind, content and parent give the same hash, in any catalog."""
    return sha256_id(
        canonical_json({"kind": kind.value, "cas_id": cas_id, "parent": parent_version_hash})
    )


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
            artifact_id = self._dag_version(
                uow, name, cas_id, document, canonical_json(document), parent_id, created_by,
                metadata_json,
            )  # fmt: skip
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
        content = canonical_json(document)
        cas_id = self._cas.store_in(uow, [(content, DAG_MEDIA_TYPE), *blobs])[0]
        return self._dag_version(
            uow, name, cas_id, document, content, parent_id, created_by, metadata_json
        )

    def _dag_version(
        self,
        uow: UnitOfWork,
        name: str,
        cas_id: str,
        document: dict[str, Any],
        content: bytes,
        parent_id: uuid.UUID | None,
        created_by: str | None,
        metadata_json: str,
    ) -> uuid.UUID:
        """Record ``document`` (``content`` is its canonical JSON) as a version."""
        artifact_id = self._create(
            uow,
            ArtifactKind.DAG_VERSION,
            name,
            cas_id,
            parent_id,
            created_by,
            metadata_json,
            refs=referenced_cas_ids(document),
        )
        self._found.resolved.put(artifact_id, Resolved(content, 0), uow)
        return artifact_id

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
            artifact_id = self._patch_set(
                uow, name, cas_id, parent_id, parent_document, document, created_by,
                metadata_json,
            )  # fmt: skip
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
        content = canonical_json(patch)
        cas_id = self._cas.store_in(uow, [(content, PATCH_MEDIA_TYPE), *blobs])[0]
        return self._patch_set(
            uow, name, cas_id, parent_id, parent_document, document, created_by, metadata_json
        )

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
    ) -> uuid.UUID:
        depth = self._found.patch_depth_in(uow, parent_id) + 1
        artifact_id = self._create(
            uow,
            ArtifactKind.PATCH_SET,
            name,
            cas_id,
            parent_id,
            created_by,
            metadata_json,
            # the values this patch brings in (its ancestors hold the rest, and stay)
            refs=added_cas_ids(parent_document, document),
        )
        self._found.resolved.put(artifact_id, Resolved(canonical_json(document), depth), uow)
        return artifact_id

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
            artifact_id = self._create(
                uow, ArtifactKind.RUN_SNAPSHOT, name, cas_id, parent_id, created_by, metadata_json
            )
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
        cas_id = self._cas.store_in(uow, [(canonical_json(snapshot), SNAPSHOT_MEDIA_TYPE)])[0]
        return self._create(
            uow, ArtifactKind.RUN_SNAPSHOT, name, cas_id, parent_id, created_by, metadata_json
        )

    def _create(
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
    ) -> uuid.UUID:
        """Insert the artifact row (name, actor and metadata checked by the caller)."""
        missing = uow.blobs.missing(refs | {cas_id})
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
        digest = version_hash(kind, cas_id, parent and parent.version_hash)
        created = uow.artifacts.add(
            kind=kind,
            version_hash=digest,
            cas_id=cas_id,
            parent_id=parent and parent.id,
            name=name,
            created_by=created_by,
            metadata_json=metadata_json,
        )
        if created is not None:
            uow.artifacts.add_refs(created.id, refs)
            self._found.by_id.put(created.id, created, uow)
            return created.id
        existing = uow.artifacts.get_by_version_hash(digest)
        if existing is None:
            raise IntegrityError(f"artifact {digest} vanished while being created")
        return existing.id
