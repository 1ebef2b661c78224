"""Reading artifacts: by id or version hash, their chains, and their resolved documents."""

import json
import uuid
from typing import Any

from core.dag import apply_patch, canonical_json
from core.domain import Artifact, ArtifactKind
from core.errors import NotFoundError, ValidationError
from core.identifiers import check_artifact_id, check_cas_id, check_limit, check_version_hash
from core.repository.unit_of_work import UnitOfWork
from core.service.cas import CasService
from core.storage.committed_cache import CommittedCache
from core.storage.uow import UnitOfWorkFactory


class Resolved:
    """An artifact's document as canonical JSON, and its patch sets above the base."""

    __slots__ = ("_json", "_unencoded", "depth")

    def __init__(self, document: bytes, depth: int) -> None:
        self._json: bytes | None = document
        self._unencoded: dict[str, Any] | None = None
        self.depth = depth

    @classmethod
    def of(cls, document: dict[str, Any], depth: int) -> "Resolved":
        """``document`` (one the catalog made, which nobody changes), encoded only when
        first read: a version made and never read again in this process is never
        encoded (landing many merges, each on the one before)."""
        resolved = cls(b"", depth)
        resolved._json, resolved._unencoded = None, document
        return resolved

    @property
    def document(self) -> bytes:
        unencoded = self._unencoded  # read first: cleared only once the JSON is set
        if self._json is None:
            self._json = canonical_json(unencoded)
            self._unencoded = None
        return self._json


class ArtifactResolution:
    """Finds artifacts and resolves them to DAG documents; artifacts never change, so
    this process caches them (as committed: see ``CommittedCache``)."""

    def __init__(
        self,
        uow: UnitOfWorkFactory[UnitOfWork],
        cas: CasService,
        *,
        resolved_cache_size: int,
        artifact_cache_size: int,
    ) -> None:
        self._uow = uow
        self._cas = cas
        self.resolved = CommittedCache[uuid.UUID, Resolved](resolved_cache_size)
        self.by_id = CommittedCache[uuid.UUID, Artifact](artifact_cache_size)

    def get_by_id(self, artifact_id: uuid.UUID) -> Artifact:
        artifact_id = check_artifact_id(artifact_id)
        with self._uow() as uow:
            artifact = self.get_in(uow, artifact_id)
            uow.commit()
        return artifact

    def get_by_version_hash(self, version_hash: str) -> Artifact:
        with self._uow() as uow:
            artifact = self.get_by_version_hash_in(uow, version_hash)
            uow.commit()
        return artifact

    def get_by_version_hash_in(self, uow: UnitOfWork, version_hash: str) -> Artifact:
        check_version_hash(version_hash)
        artifact = uow.artifacts.get_by_version_hash(version_hash)
        if artifact is None:
            raise NotFoundError(f"artifact with version hash {version_hash} not found")
        return artifact

    def get_patch_chain(self, head_id: uuid.UUID) -> list[Artifact]:
        """The artifacts from the nearest ``dag_version`` up to ``head_id``, base first."""
        head_id = check_artifact_id(head_id)
        with self._uow() as uow:
            chain = self._chain(uow, head_id)
            uow.commit()
        return chain

    def get_ancestry(self, artifact_id: uuid.UUID, *, limit: int = 1000) -> list[Artifact]:
        """``artifact_id`` and its parents, newest first, down to the first version."""
        artifact_id = check_artifact_id(artifact_id)
        check_limit(limit)
        with self._uow() as uow:
            line = uow.artifacts.ancestry(artifact_id, limit)
            uow.commit()
        if not line:
            raise NotFoundError(f"artifact {artifact_id} not found")
        return line

    def resolve(self, artifact_id: uuid.UUID) -> dict[str, Any]:
        """The DAG document at ``artifact_id``: its base version with every patch applied.

        Resolved documents are cached as canonical JSON, so callers get their own copy; a
        chain is replayed from its highest cached link.
        """
        artifact_id = check_artifact_id(artifact_id)
        document: dict[str, Any] = json.loads(self._resolved(None, artifact_id).document)
        return document

    def resolve_in(self, uow: UnitOfWork, artifact_id: uuid.UUID) -> dict[str, Any]:
        """A step: ``resolve`` in ``uow``."""
        artifact_id = check_artifact_id(artifact_id)
        document: dict[str, Any] = json.loads(self._resolved(uow, artifact_id).document)
        return document

    def patch_depth(self, artifact_id: uuid.UUID) -> int:
        """How many patch sets lie between ``artifact_id`` and its nearest ``dag_version``."""
        return self.patch_depth_in(None, artifact_id)

    def patch_depth_in(self, uow: UnitOfWork | None, artifact_id: uuid.UUID) -> int:
        """A step: ``patch_depth`` in ``uow`` (``None``: in a unit of work of its own)."""
        artifact_id = check_artifact_id(artifact_id)
        return self._resolved(uow, artifact_id).depth

    def get_in(self, uow: UnitOfWork, artifact_id: uuid.UUID) -> Artifact:
        """A step: the artifact ``artifact_id`` (``NotFoundError`` if there is none)."""
        artifact = self.by_id.get(artifact_id, uow)
        if artifact is None:
            artifact = uow.artifacts.get(artifact_id)
            if artifact is None:
                raise NotFoundError(f"artifact {artifact_id} not found")
            self.by_id.put(artifact_id, artifact, uow)
        return artifact

    def load_json(self, cas_id: str, uow: UnitOfWork | None = None) -> Any:
        """The JSON stored at ``cas_id`` (read in ``uow``, if given)."""
        check_cas_id(cas_id)
        content = (
            self._cas.get_content(cas_id) if uow is None else self._cas.content_in(uow, cas_id)
        )
        try:
            return json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"content {cas_id} is not JSON: {exc}") from exc

    def _resolved(self, uow: UnitOfWork | None, artifact_id: uuid.UUID) -> Resolved:
        cached = self.resolved.get(artifact_id, uow)
        if cached is not None:
            return cached
        if uow is not None:
            return self._replay(uow, artifact_id)
        with self._uow() as own:
            resolved = self._replay(own, artifact_id)
            own.commit()
        return resolved

    def _chain(self, uow: UnitOfWork, head_id: uuid.UUID) -> list[Artifact]:
        chain = uow.artifacts.chain(head_id)
        if not chain:
            raise NotFoundError(f"artifact {head_id} not found")
        return chain

    def _replay(self, uow: UnitOfWork, artifact_id: uuid.UUID) -> Resolved:
        """Resolve ``artifact_id`` from the highest link of its chain this process has
        resolved (else from its ``dag_version``), patching one private copy in place, and
        cache its document and depth."""
        head = self.by_id.get(artifact_id, uow)
        start = None
        if head is not None and head.parent_id is not None:
            start = self.resolved.get(head.parent_id, uow)
        if head is not None and start is not None:
            chain = [head]
        else:
            chain = self._chain(uow, artifact_id)
            for artifact in chain:
                self.by_id.put(artifact.id, artifact, uow)
            for index in range(len(chain) - 2, -1, -1):
                start = self.resolved.get(chain[index].id, uow)
                if start is not None:
                    chain = chain[index + 1 :]
                    break
        if start is not None:
            document, depth = json.loads(start.document), start.depth
        elif chain[0].kind is ArtifactKind.DAG_VERSION:
            document, depth = None, 0
        else:
            raise ValidationError(
                f"artifact {artifact_id} does not descend from a dag_version "
                f"(its chain starts at {chain[0].kind} {chain[0].id})"
            )
        for artifact in chain:
            if artifact.kind is ArtifactKind.DAG_VERSION:
                document, depth = self.load_json(artifact.cas_id, uow), 0
            elif artifact.kind is ArtifactKind.PATCH_SET:
                patch = self.load_json(artifact.cas_id, uow)
                document = apply_patch(document, patch, in_place=True)  # a private copy
                depth += 1
        resolved = Resolved.of(document, depth)  # patched in place: a private copy
        self.resolved.put(artifact_id, resolved, uow)
        return resolved
