"""SQL for artifacts: inserts, lookups and the patch chain as one recursive query."""

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.domain import Artifact, ArtifactKind
from core.models import ArtifactRow
from core.repository.clock import aware, utc_now

artifacts = ArtifactRow.__table__


def _to_artifact(row: Row[Any]) -> Artifact:
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
        created_at: datetime | None = None,
    ) -> Artifact | None:
        """Insert an artifact; ``None`` when one with this version hash exists already."""
        row = self._session.execute(
            insert(artifacts)
            .values(
                id=uuid.uuid4(),
                kind=kind.value,
                version_hash=version_hash,
                cas_id=cas_id,
                parent_id=parent_id,
                name=name,
                created_at=created_at or utc_now(),
                created_by=created_by,
                metadata=metadata_json,
            )
            .on_conflict_do_nothing(index_elements=[artifacts.c.version_hash])
            .returning(*artifacts.c)
        ).first()
        return None if row is None else _to_artifact(row)

    def get(self, artifact_id: uuid.UUID) -> Artifact | None:
        row = self._session.execute(select(artifacts).where(artifacts.c.id == artifact_id)).first()
        return None if row is None else _to_artifact(row)

    def get_by_version_hash(self, version_hash: str) -> Artifact | None:
        row = self._session.execute(
            select(artifacts).where(artifacts.c.version_hash == version_hash)
        ).first()
        return None if row is None else _to_artifact(row)

    def chain(self, head_id: uuid.UUID) -> list[Artifact]:
        """``head_id`` and its ancestors down to the nearest ``dag_version``, base first."""
        step = select(artifacts, literal(0).label("depth")).where(artifacts.c.id == head_id)
        chain = step.cte("chain", recursive=True)
        parent = artifacts.alias("parent")
        chain = chain.union_all(
            select(parent, (chain.c.depth + 1).label("depth"))
            .join(chain, parent.c.id == chain.c.parent_id)
            .where(chain.c.kind != ArtifactKind.DAG_VERSION.value)
        )
        rows = self._session.execute(select(chain).order_by(chain.c.depth.desc())).all()
        return [_to_artifact(row) for row in rows]
