"""The artifact catalog: immutable DAG versions, patch sets and run snapshots."""

import json
import uuid
from typing import Any

from core.dag import apply_patch, canonical_json, sha256_id, validate_dag, validate_patch
from core.domain import Artifact, ArtifactKind
from core.errors import IntegrityError, NotFoundError, ValidationError
from core.identifiers import check_artifact_id, check_cas_id, check_version_hash
from core.service.cas import CasService
from core.uow import UnitOfWork, UnitOfWorkFactory


def version_hash(kind: ArtifactKind, cas_id: str, parent_version_hash: str | None) -> str:
    """Same kind, content and parent give the same hash, in any catalog."""
    return sha256_id(
        canonical_json({"kind": kind.value, "cas_id": cas_id, "parent": parent_version_hash})
    )


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= 255 or not name.isprintable():
        raise ValidationError(
            f"invalid artifact name {name!r}: expected 1-255 printable characters"
        )
    return name


def _check_actor(actor: object) -> str | None:
    if actor is not None and (not isinstance(actor, str) or len(actor) > 255):
        raise ValidationError(f"invalid created_by {actor!r}: expected at most 255 characters")
    return actor


class ArtifactService:
    """Creates artifacts idempotently and resolves them to DAG documents."""

    def __init__(self, uow: UnitOfWorkFactory, cas: CasService) -> None:
        self._uow = uow
        self._cas = cas

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
        validate_dag(self._load_json(cas_id))
        return self._create(ArtifactKind.DAG_VERSION, name, cas_id, parent_id, created_by, metadata)

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
        patch = validate_patch(self._load_json(cas_id))
        validate_dag(apply_patch(self.resolve(parent_id), patch))
        return self._create(ArtifactKind.PATCH_SET, name, cas_id, parent_id, created_by, metadata)

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
        if not isinstance(self._load_json(cas_id), dict):
            raise ValidationError(f"run snapshot content {cas_id} must be a JSON object")
        return self._create(
            ArtifactKind.RUN_SNAPSHOT, name, cas_id, parent_id, created_by, metadata
        )

    def get_by_id(self, artifact_id: uuid.UUID) -> Artifact:
        artifact_id = check_artifact_id(artifact_id)
        with self._uow() as uow:
            return self._get(uow, artifact_id)

    def get_by_version_hash(self, version_hash: str) -> Artifact:
        check_version_hash(version_hash)
        with self._uow() as uow:
            artifact = uow.artifacts.get_by_version_hash(version_hash)
        if artifact is None:
            raise NotFoundError(f"artifact with version hash {version_hash} not found")
        return artifact

    def get_patch_chain(self, head_id: uuid.UUID) -> list[Artifact]:
        """The artifacts from the nearest ``dag_version`` up to ``head_id``, base first."""
        head_id = check_artifact_id(head_id)
        with self._uow() as uow:
            chain = uow.artifacts.chain(head_id)
        if not chain:
            raise NotFoundError(f"artifact {head_id} not found")
        return chain

    def resolve(self, artifact_id: uuid.UUID) -> dict[str, Any]:
        """The DAG document at ``artifact_id``: its base version with every patch applied."""
        chain = self.get_patch_chain(artifact_id)
        base, above = chain[0], chain[1:]
        if base.kind is not ArtifactKind.DAG_VERSION:
            raise ValidationError(
                f"artifact {artifact_id} does not descend from a dag_version "
                f"(its chain starts at {base.kind} {base.id})"
            )
        document = self._load_json(base.cas_id)
        for artifact in above:
            if artifact.kind is ArtifactKind.PATCH_SET:
                document = apply_patch(document, self._load_json(artifact.cas_id))
        return document

    def _create(
        self,
        kind: ArtifactKind,
        name: str,
        cas_id: str,
        parent_id: uuid.UUID | None,
        created_by: str | None,
        metadata: dict[str, Any] | None,
    ) -> uuid.UUID:
        _check_name(name)
        _check_actor(created_by)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError(f"artifact metadata must be a JSON object, got {metadata!r}")
        metadata_json = canonical_json(metadata or {}).decode()
        with self._uow() as uow:
            if uow.blobs.get(cas_id) is None:
                raise NotFoundError(f"blob {cas_id} not found in the catalog")
            parent = None if parent_id is None else self._get(uow, check_artifact_id(parent_id))
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
                return created.id
            existing = uow.artifacts.get_by_version_hash(digest)
            if existing is None:
                raise IntegrityError(f"artifact {digest} vanished while being created")
            return existing.id

    def _get(self, uow: UnitOfWork, artifact_id: uuid.UUID) -> Artifact:
        artifact = uow.artifacts.get(artifact_id)
        if artifact is None:
            raise NotFoundError(f"artifact {artifact_id} not found")
        return artifact

    def _load_json(self, cas_id: str) -> Any:
        check_cas_id(cas_id)
        content = self._cas.get_content(cas_id)
        try:
            return json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"content {cas_id} is not JSON: {exc}") from exc
