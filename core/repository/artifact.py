"""SQL for artifacts: inserts, lookups and the patch chain as one recursive query.

In a deferred transaction (``core.storage.duckdb.pending``) ``add`` and ``add_refs`` stage
their rows, and ``get`` and ``get_by_version_hash`` look at the staged rows first.
"""

import json
import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from sqlalchemy import CTE, ColumnElement, Row, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.domain import Artifact, ArtifactKind
from core.repository.clock import aware, utc_now
from core.repository.errors import conflicts_on_integrity_errors
from core.storage.duckdb.inserts import insert_if_absent
from core.storage.duckdb.pending import PendingWrites
from core.storage.models import ArtifactRow, BlobRefRow
from core.storage.session_info import PENDING, PENDING_AWARE

artifacts = ArtifactRow.__table__
blob_refs = BlobRefRow.__table__


def _to_artifact(row: Row[Any] | SimpleNamespace) -> Artifact:
    return Artifact(
        id=row.id,
        kind=ArtifactKind(row.kind),
        version_hash=row.version_hash,
        cas_id=row.cas_id,
        parent_id=row.parent_id,
        name=row.name,
        created_at=aware(row.created_at),
        created_by=row.created_by,
        metadata=json.loads(row.metadata),
    )


class ArtifactRepository:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._pending: PendingWrites | None = session.info.get(PENDING)

    @conflicts_on_integrity_errors
    def add(
        self,
        *,
        kind: ArtifactKind,
        version_hash: str,
        cas_id: str,
        parent_id: uuid.UUID | None,
        name: str,
        created_by: str | None,
        metadata_json: str,
    ) -> Artifact | None:
        """Insert an artifact; ``None`` when one with this version hash exists already."""
        values = {
            "id": uuid.uuid4(),
            "kind": kind.value,
            "version_hash": version_hash,
            "cas_id": cas_id,
            "parent_id": parent_id,
            "name": name,
            "created_at": utc_now(),
            "created_by": created_by,
            "metadata": metadata_json,
        }
        if self._pending is not None:
            return self._stage(self._pending, values)
        inserted = insert_if_absent(
            self._session, artifacts, values, ("version_hash",), returning=("id",)
        )
        return None if inserted is None else _to_artifact(SimpleNamespace(**values))

    def _stage(self, pending: PendingWrites, values: dict[str, Any]) -> Artifact | None:
        version = values["version_hash"]
        if pending.artifact_with_version(version) is not None:
            return None
        # A pending parent is not in the file, so neither is any child of it: only a
        # version on a parent in the file may be there already.
        if pending.artifact(values["parent_id"]) is None and self._find(
            artifacts.c.version_hash == version
        ):
            return None
        pending.insert("artifacts", [values])
        return _to_artifact(SimpleNamespace(**values))

    @conflicts_on_integrity_errors
    def add_refs(self, artifact_id: uuid.UUID, cas_ids: frozenset[str]) -> None:
        """Record the blobs an artifact's content names."""
        rows = [{"artifact_id": artifact_id, "cas_id": cas_id} for cas_id in sorted(cas_ids)]
        if not rows:
            return
        if self._pending is not None:
            self._pending.insert("blob_refs", rows)
        else:
            self._session.execute(insert(blob_refs), rows)

    def get(self, artifact_id: uuid.UUID) -> Artifact | None:
        if self._pending is not None and (row := self._pending.artifact(artifact_id)):
            return _to_artifact(SimpleNamespace(**row))
        return self._find(artifacts.c.id == artifact_id)

    def get_by_version_hash(self, version_hash: str) -> Artifact | None:
        if self._pending is not None and (row := self._pending.artifact_with_version(version_hash)):
            return _to_artifact(SimpleNamespace(**row))
        return self._find(artifacts.c.version_hash == version_hash)

    def _find(self, where: ColumnElement[bool]) -> Artifact | None:
        """The artifact in the file matching ``where`` (a key: at most one)."""
        statement = select(artifacts).where(where).execution_options(**{PENDING_AWARE: True})
        row = self._session.execute(statement).first()
        return None if row is None else _to_artifact(row)

    def find_by_version_prefix(self, prefix: str, limit: int) -> list[Artifact]:
        """Artifacts whose version hash starts with ``prefix`` (at most ``limit``)."""
        pattern = prefix.replace("\\", "").replace("%", "").replace("_", "") + "%"
        rows = self._session.execute(
            select(artifacts).where(artifacts.c.version_hash.like(pattern)).limit(limit)
        ).all()
        return [_to_artifact(row) for row in rows]

    def ancestry(self, head_id: uuid.UUID, limit: int) -> list[Artifact]:
        """``head_id`` and its parents, newest first, down to the first version."""
        line = _line_up(head_id, lambda child: child.c.depth < limit - 1)
        rows = self._session.execute(select(line).order_by(line.c.depth)).all()
        return [_to_artifact(row) for row in rows]

    def referencing(self, cas_id: str) -> list[uuid.UUID]:
        """Artifacts whose content is ``cas_id`` or names it."""
        direct = select(artifacts.c.id).where(artifacts.c.cas_id == cas_id)
        named = select(blob_refs.c.artifact_id).where(blob_refs.c.cas_id == cas_id)
        return sorted(set(self._session.scalars(direct.union(named))))

    def chain(self, head_id: uuid.UUID) -> list[Artifact]:
        """``head_id`` and its ancestors down to the nearest ``dag_version``, base first."""
        line = _line_up(head_id, lambda child: child.c.kind != ArtifactKind.DAG_VERSION.value)
        rows = self._session.execute(select(line).order_by(line.c.depth.desc())).all()
        return [_to_artifact(row) for row in rows]


def _line_up(head_id: uuid.UUID, climbs: Callable[[CTE], ColumnElement[bool]]) -> CTE:
    """One recursive query: ``head_id`` at depth 0, then each parent whose child
    satisfies ``climbs``."""
    start = select(artifacts, literal(0).label("depth")).where(artifacts.c.id == head_id)
    line = start.cte("line", recursive=True)
    parent = artifacts.alias("parent")
    return line.union_all(
        select(parent, (line.c.depth + 1).label("depth"))
        .join(line, parent.c.id == line.c.parent_id)
        .where(climbs(line))
    )
