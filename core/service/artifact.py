"""The artifact catalog: immutable DAG versions, patch sets and run snapshots."""

import json
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

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
from core.domain import Artifact, ArtifactKind
from core.errors import IntegrityError, NotFoundError, ValidationError
from core.identifiers import (
    check_actor,
    check_artifact_id,
    check_artifact_name,
    check_cas_id,
    check_limit,
    check_version_hash,
)
from core.repository.unit_of_work import UnitOfWork
from core.service.cas import CasService
from core.storage.committed_cache import CommittedCache
from core.storage.uow import UnitOfWorkFactory

RESOLVED_CACHE_SIZE = 256
"""Resolved DAG documents kept per process (artifacts are immutable)."""
ARTIFACT_CACHE_SIZE = 4096


def version_hash(kind: ArtifactKind, cas_id: str, parent_version_hash: str | None) -> str:
    """Same kind, content and parent give the same hash, in any catalog."""
    return sha256_id(
        canonical_json({"kind": kind.value, "cas_id": cas_id, "parent": parent_version_hash})
    )


class _Resolved(NamedTuple):
    """An artifact's document as canonical JSON, and its patch sets above the base."""

    document: bytes
    depth: int


def _check_record(name: object, created_by: object, metadata: object) -> str:
    """Check what an artifact row records besides its content; its metadata as JSON."""
    check_artifact_name(name)
    check_actor(created_by)
    if metadata is not None and not isinstance(metadata, dict):
        raise ValidationError(f"artifact metadata must be a JSON object, got {metadata!r}")
    return canonical_json(metadata or {}).decode()


class ArtifactService:
    """Creates artifacts idempotently and resolves them to DAG documents."""

    def __init__(self, uow: UnitOfWorkFactory[UnitOfWork], cas: CasService) -> None:
        self._uow = uow
        self._cas = cas
        self._resolved = CommittedCache[uuid.UUID, _Resolved](uow, RESOLVED_CACHE_SIZE)
        self._by_id = CommittedCache[uuid.UUID, Artifact](uow, ARTIFACT_CACHE_SIZE)

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
        metadata_json = _check_record(name, created_by, metadata)
        document = validate_dag(self._load_json(cas_id))
        return self._create_dag_version(
            name, cas_id, document, canonical_json(document), parent_id, created_by, metadata_json
        )

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
        document names are stored with it."""
        metadata_json = _check_record(name, created_by, metadata)  # before any file is written
        content = canonical_json(document)
        with self._uow():  # the blobs and the version: all or nothing
            cas_id = self._cas.store_contents([(content, DAG_MEDIA_TYPE), *blobs])[0]
            return self._create_dag_version(
                name, cas_id, document, content, parent_id, created_by, metadata_json
            )

    def _create_dag_version(
        self,
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
            ArtifactKind.DAG_VERSION,
            name,
            cas_id,
            parent_id,
            created_by,
            metadata_json,
            refs=referenced_cas_ids(document),
        )
        self._resolved.put(artifact_id, _Resolved(content, 0))
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
        metadata_json = _check_record(name, created_by, metadata)
        patch = validate_patch(self._load_json(cas_id))
        parent_document = self.resolve(parent_id)
        document = validate_dag(apply_patch(parent_document, patch))
        return self._create_patch_set(
            name, cas_id, parent_id, parent_document, document, created_by, metadata_json
        )

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
        metadata_json = _check_record(name, created_by, metadata)  # before any file is written
        with self._uow():  # the blobs and the patch set: all or nothing
            content = canonical_json(patch)
            cas_id = self._cas.store_contents([(content, PATCH_MEDIA_TYPE), *blobs])[0]
            return self._create_patch_set(
                name, cas_id, parent_id, parent_document, document, created_by, metadata_json
            )

    def _create_patch_set(
        self,
        name: str,
        cas_id: str,
        parent_id: uuid.UUID,
        parent_document: dict[str, Any],
        document: dict[str, Any],
        created_by: str | None,
        metadata_json: str,
    ) -> uuid.UUID:
        depth = self.patch_depth(parent_id) + 1
        artifact_id = self._create(
            ArtifactKind.PATCH_SET,
            name,
            cas_id,
            parent_id,
            created_by,
            metadata_json,
            # the values this patch brings in (its ancestors hold the rest, and stay)
            refs=added_cas_ids(parent_document, document),
        )
        self._resolved.put(artifact_id, _Resolved(canonical_json(document), depth))
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
        metadata_json = _check_record(name, created_by, metadata)
        if not isinstance(self._load_json(cas_id), dict):
            raise ValidationError(f"run snapshot content {cas_id} must be a JSON object")
        return self._create(
            ArtifactKind.RUN_SNAPSHOT, name, cas_id, parent_id, created_by, metadata_json
        )

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
        metadata_json = _check_record(name, created_by, None)  # before the file is written
        with self._uow():  # the blob and the snapshot: all or nothing
            cas_id = self._cas.store_content(canonical_json(snapshot), SNAPSHOT_MEDIA_TYPE)
            return self._create(
                ArtifactKind.RUN_SNAPSHOT, name, cas_id, parent_id, created_by, metadata_json
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

    def get_ancestry(self, artifact_id: uuid.UUID, *, limit: int = 1000) -> list[Artifact]:
        """``artifact_id`` and its parents, newest first, down to the first version."""
        artifact_id = check_artifact_id(artifact_id)
        check_limit(limit)
        with self._uow() as uow:
            line = uow.artifacts.ancestry(artifact_id, limit)
        if not line:
            raise NotFoundError(f"artifact {artifact_id} not found")
        return line

    def resolve(self, artifact_id: uuid.UUID) -> dict[str, Any]:
        """The DAG document at ``artifact_id``: its base version with every patch applied.

        Artifacts never change, so resolved documents are cached (as canonical JSON, so
        callers get their own copy); a chain is replayed from its highest cached link.
        """
        artifact_id = check_artifact_id(artifact_id)
        return json.loads((self._resolved.get(artifact_id) or self._replay(artifact_id)).document)

    def patch_depth(self, artifact_id: uuid.UUID) -> int:
        """How many patch sets lie between ``artifact_id`` and its nearest ``dag_version``."""
        artifact_id = check_artifact_id(artifact_id)
        return (self._resolved.get(artifact_id) or self._replay(artifact_id)).depth

    def _replay(self, artifact_id: uuid.UUID) -> _Resolved:
        """Resolve ``artifact_id`` and cache its document and depth (and its chain's)."""
        with self._uow() as uow:
            head = self._get(uow, artifact_id)
            parent = None if head.parent_id is None else self._resolved.get(head.parent_id)
            chain = [head] if parent is not None else self.get_patch_chain(artifact_id)
        if parent is not None:
            document, depth = json.loads(parent.document), parent.depth
        elif chain[0].kind is ArtifactKind.DAG_VERSION:
            document, depth = None, 0
        else:
            raise ValidationError(
                f"artifact {artifact_id} does not descend from a dag_version "
                f"(its chain starts at {chain[0].kind} {chain[0].id})"
            )
        resolved = _Resolved(b"", 0)
        for artifact in chain:
            if artifact.kind is ArtifactKind.DAG_VERSION:
                document, depth = self._load_json(artifact.cas_id), 0
            elif artifact.kind is ArtifactKind.PATCH_SET:
                document, depth = apply_patch(document, self._load_json(artifact.cas_id)), depth + 1
            resolved = _Resolved(canonical_json(document), depth)
            self._resolved.put(artifact.id, resolved)
        return resolved

    def _create(
        self,
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
        with self._uow() as uow:
            missing = uow.blobs.missing(refs | {cas_id})
            if cas_id in missing:
                raise NotFoundError(f"blob {cas_id} not found in the catalog")
            if missing:
                raise NotFoundError(
                    f"{kind} content names blobs that are not in the catalog: "
                    + ", ".join(sorted(missing))
                )
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
                uow.artifacts.add_refs(created.id, refs)
                self._by_id.put(created.id, created)
                return created.id
            existing = uow.artifacts.get_by_version_hash(digest)
            if existing is None:
                raise IntegrityError(f"artifact {digest} vanished while being created")
            return existing.id

    def _get(self, uow: UnitOfWork, artifact_id: uuid.UUID) -> Artifact:
        artifact = self._by_id.get(artifact_id)
        if artifact is None:
            artifact = uow.artifacts.get(artifact_id)
            if artifact is None:
                raise NotFoundError(f"artifact {artifact_id} not found")
            self._by_id.put(artifact_id, artifact)
        return artifact

    def _load_json(self, cas_id: str) -> Any:
        check_cas_id(cas_id)
        content = self._cas.get_content(cas_id)
        try:
            return json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"content {cas_id} is not JSON: {exc}") from exc
