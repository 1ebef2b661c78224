"""SQL for artifacts: inserts, lookups and the patch chain as one recursive query."""

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    FromClause,
    Row,
    Select,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from core.domain import Artifact, ArtifactKind
from core.repository.clock import aware, utc_now
from core.repository.errors import conflicts_on_integrity_errors
from core.storage.commit_record import NewVersion
from core.storage.duckdb.inserts import insert_if_absent
from core.storage.models import ArtifactRow, BlobRefRow
from core.storage.session_info import SKIP_NODES
from core.storage.skip_list import SkipNode, skip_length, skip_node, skip_nodes

artifacts = ArtifactRow.__table__
blob_refs = BlobRefRow.__table__
_NAMES = tuple(column.name for column in artifacts.c)


def to_artifact(row: Row[Any] | SimpleNamespace) -> Artifact:
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
        merged_id=row.merged_id,
    )


def labelled_columns(source: FromClause, prefix: str) -> list[ColumnElement[Any]]:
    """The columns of ``source`` (the artifacts table or an alias of it), labelled
    ``<prefix><name>``: an artifact read along with another table's row."""
    return [column.label(f"{prefix}{column.name}") for column in source.c]


def labelled_artifact(row: Row[Any], prefix: str) -> Artifact | None:
    """The artifact a row read through ``labelled_columns`` (``None``: an outer join
    found none)."""
    mapping = row._mapping
    if mapping[f"{prefix}id"] is None:
        return None
    return to_artifact(SimpleNamespace(**{name: mapping[f"{prefix}{name}"] for name in _NAMES}))


class ArtifactRepository:
    def __init__(self, session: Session) -> None:
        self._session = session

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
        artifact_id: uuid.UUID | None = None,
        created_at: datetime | None = None,
        merged_id: uuid.UUID | None = None,
    ) -> Artifact | None:
        """Insert an artifact (a new id, and now, unless given); ``None`` when one with
        this version hash exists already."""
        artifact_id = artifact_id or uuid.uuid4()
        skip = self.new_skip_node(artifact_id, parent_id)
        values = {
            "id": artifact_id,
            "kind": kind.value,
            "version_hash": version_hash,
            "cas_id": cas_id,
            "parent_id": parent_id,
            "merged_id": merged_id,
            "name": name,
            "created_at": created_at or utc_now(),
            "created_by": created_by,
            "metadata": metadata_json,
            "generation": skip.generation,
            "skip_id": skip.skip_id,
        }
        inserted = insert_if_absent(
            self._session, artifacts, values, ("version_hash",), returning=("id",)
        )
        if inserted is None:
            return None
        self.added(artifact_id, skip)
        return to_artifact(SimpleNamespace(**values))

    def new_skip_node(self, artifact_id: uuid.UUID, parent_id: uuid.UUID | None) -> SkipNode:
        """The pointers of a new artifact on ``parent_id`` (read, unless this transaction
        added the parent)."""
        known: dict[uuid.UUID, SkipNode] = self._session.info.get(SKIP_NODES, {})
        if parent_id is not None and parent_id in known and known[parent_id].skip_id in known:
            return skip_node(artifact_id, parent_id, known.__getitem__)
        return skip_node(artifact_id, parent_id, self._skip_nodes_above(parent_id).__getitem__)

    def added(self, artifact_id: uuid.UUID, skip: SkipNode) -> None:
        """Remember the pointers of an artifact this transaction inserted: a child added
        next reads them here."""
        self._session.info.setdefault(SKIP_NODES, {})[artifact_id] = skip

    @conflicts_on_integrity_errors
    def add_line(self, versions: Sequence[NewVersion], created_at: Sequence[datetime]) -> bool:
        """Postgres: insert new versions, each on the one before it or on an artifact
        stored already (``created_at`` each), and the blobs their contents name, in two
        statements; false when one of their hashes is there already (the others may have
        been inserted: the caller rolls back)."""
        known: dict[uuid.UUID, SkipNode] = self._session.info.setdefault(SKIP_NODES, {})

        def stored(artifact_id: uuid.UUID) -> SkipNode:
            if artifact_id not in known:
                known.update(self._skip_nodes_above(artifact_id))
            return known[artifact_id]

        nodes = skip_nodes([(version.id, version.parent_id) for version in versions], stored)
        rows = [
            version.row(at) | nodes[version.id]._asdict()
            for version, at in zip(versions, created_at, strict=True)
        ]
        inserted = self._session.execute(_ADD_LINE, rows).all()
        if len(inserted) != len(rows):
            return False
        known.update(nodes)
        self._add_refs([(version.id, cas_id) for version in versions for cas_id in version.refs])
        return True

    @conflicts_on_integrity_errors
    def add_refs(self, artifact_id: uuid.UUID, cas_ids: frozenset[str]) -> None:
        """Record the blobs an artifact's content names."""
        self._add_refs([(artifact_id, cas_id) for cas_id in sorted(cas_ids)])

    def _add_refs(self, refs: Sequence[tuple[uuid.UUID, str]]) -> None:
        """Record (artifact id, cas id) pairs in one statement, each column sent as one
        list (a full version names every blob of its DAG; ``executemany`` would send a
        statement a row)."""
        if refs:
            artifact_ids = [str(artifact_id) for artifact_id, _ in refs]
            self._session.execute(
                _ADD_REFS, {"artifact_ids": artifact_ids, "cas_ids": [c for _, c in refs]}
            )

    def _skip_nodes_above(self, parent_id: uuid.UUID | None) -> dict[uuid.UUID, SkipNode]:
        """The skip nodes of ``parent_id`` and of its skip: what a new child's need, in
        one query."""
        if parent_id is None:
            return {}
        row = self._session.execute(_SKIP_NODES_ABOVE, {"parent_id": parent_id}).one()
        parent, above = SkipNode(row[0], row[1]), SkipNode(row[2], row[3])
        return {parent_id: parent, parent.skip_id: above}

    def first_parent(self, head_id: uuid.UUID, generations: int) -> Artifact | None:
        """The artifact ``generations`` first parents below ``head_id`` (``REF~N``), or
        ``None`` when the line is shorter.

        Which pointer each step follows depends on generations alone (``skip_length``),
        so once the head's generation is read, the O(log N) steps are one recursive query
        that follows the spelled-out path (``s``: skip, ``p``: parent). Each step joins
        only the artifacts of the generations the walk steps from, not the whole table:
        DuckDB has no index joins, so a join with every artifact would scan them all at
        every step."""
        head = self._session.scalar(select(artifacts.c.generation).where(artifacts.c.id == head_id))
        if head is None or head < generations:
            return None
        steps = _first_parent_path(head, head - generations)
        if not steps:
            return self.get(head_id)
        path = "".join(pointer for _, pointer in steps)
        on_path = (
            select(artifacts.c.id, artifacts.c.parent_id, artifacts.c.skip_id)
            .where(artifacts.c.generation.in_({generation for generation, _ in steps}))
            .cte("on_path")
        )
        start = select(literal(head_id, artifacts.c.id.type).label("id"), literal(0).label("step"))
        walk = start.cte("walk", recursive=True)
        pointer = case(
            (func.substr(literal(path), walk.c.step + 1, 1) == "s", on_path.c.skip_id),
            else_=on_path.c.parent_id,
        )
        walk = walk.union_all(
            select(pointer.label("id"), (walk.c.step + 1).label("step"))
            .select_from(walk.join(on_path, on_path.c.id == walk.c.id))
            .where(walk.c.step < len(path))
        )
        found = select(walk.c.id).where(walk.c.step == len(path)).scalar_subquery()
        return self._find(artifacts.c.id == found)

    def get(self, artifact_id: uuid.UUID) -> Artifact | None:
        return self._find(artifacts.c.id == artifact_id)

    def get_by_version_hash(self, version_hash: str) -> Artifact | None:
        return self._find(artifacts.c.version_hash == version_hash)

    def _find(self, where: ColumnElement[bool]) -> Artifact | None:
        """The artifact matching ``where`` (a key: at most one)."""
        row = self._session.execute(select(artifacts).where(where)).first()
        return None if row is None else to_artifact(row)

    def find_by_version_prefix(self, prefix: str, limit: int) -> list[Artifact]:
        """Artifacts whose version hash starts with ``prefix`` (at most ``limit``)."""
        pattern = prefix.replace("\\", "").replace("%", "").replace("_", "") + "%"
        rows = self._session.execute(
            select(artifacts).where(artifacts.c.version_hash.like(pattern)).limit(limit)
        ).all()
        return [to_artifact(row) for row in rows]

    def ancestry(self, head_id: uuid.UUID, limit: int) -> list[Artifact]:
        """``head_id`` and its parents, newest first, down to the first version."""
        line = _line_up(head_id, lambda child: child.c.depth < limit - 1)
        rows = self._session.execute(select(line).order_by(line.c.depth)).all()
        return [to_artifact(row) for row in rows]

    def ancestors(self, head_id: uuid.UUID, limit: int) -> dict[uuid.UUID, int]:
        """``head_id`` and the versions it descends from, through parents and merged
        versions alike, each at its least depth (``head_id`` at 0), the ``limit`` nearest."""
        start = select(artifacts.c.id, literal(0).label("depth")).where(artifacts.c.id == head_id)
        line = start.cte("ancestors", recursive=True)
        parent = artifacts.alias("parent")
        child = artifacts.alias("child")
        line = line.union(
            select(parent.c.id, (line.c.depth + 1).label("depth"))
            .select_from(line.join(child, child.c.id == line.c.id))
            .join(
                parent,
                (parent.c.id == child.c.parent_id) | (parent.c.id == child.c.merged_id),
            )
            .where(line.c.depth < limit)
        )
        rows = self._session.execute(
            select(line.c.id, func.min(line.c.depth).label("depth"))
            .group_by(line.c.id)
            .order_by(func.min(line.c.depth))
            .limit(limit)
        ).all()
        return {row.id: row.depth for row in rows}

    def referencing(self, cas_id: str) -> list[uuid.UUID]:
        """Artifacts whose content is ``cas_id`` or names it."""
        direct = select(artifacts.c.id).where(artifacts.c.cas_id == cas_id)
        named = select(blob_refs.c.artifact_id).where(blob_refs.c.cas_id == cas_id)
        return sorted(set(self._session.scalars(direct.union(named))))

    def chain(self, head_id: uuid.UUID) -> list[Artifact]:
        """``head_id`` and its ancestors down to the nearest ``dag_version``, base first."""
        rows = self._session.execute(_CHAIN, {"head_id": head_id}).all()
        return [to_artifact(row) for row in rows]


_ADD_LINE = insert(artifacts).on_conflict_do_nothing().returning(artifacts.c.id)
"""``ArtifactRepository.add_line``'s statement (run for many rows), built once."""
_ADD_REFS = insert(blob_refs).from_select(
    ["artifact_id", "cas_id"],
    select(
        func.unnest(cast(bindparam("artifact_ids"), ARRAY(blob_refs.c.artifact_id.type))),
        func.unnest(cast(bindparam("cas_ids"), ARRAY(blob_refs.c.cas_id.type))),
    ),
)
"""Pairs given as two lists of the same length, which ``unnest`` zips (on both backends)."""
_SKIP = artifacts.alias("skip")
_SKIP_NODES_ABOVE = (
    select(artifacts.c.generation, artifacts.c.skip_id, _SKIP.c.generation, _SKIP.c.skip_id)
    .join(_SKIP, _SKIP.c.id == artifacts.c.skip_id)
    .where(artifacts.c.id == bindparam("parent_id", type_=artifacts.c.id.type))
)


def _first_parent_path(generation: int, target: int) -> list[tuple[int, str]]:
    """The steps of a walk from ``generation`` down to ``target``: the generation each
    step leaves and the pointer it follows, ``s`` for a skip that does not overshoot,
    else ``p`` for the parent."""
    steps = []
    while generation > target:
        skips_to = generation - skip_length(generation)
        if skips_to >= target:
            steps.append((generation, "s"))
            generation = skips_to
        else:
            steps.append((generation, "p"))
            generation -= 1
    return steps


def _line_up(
    head_id: uuid.UUID | BindParameter[uuid.UUID], climbs: Callable[[CTE], ColumnElement[bool]]
) -> CTE:
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


def _chain_query() -> Select[Any]:
    """``chain``'s query, built once (building it costs more than running it): the
    artifacts from ``:head_id`` down to the nearest ``dag_version``, base first."""
    line = _line_up(
        bindparam("head_id", type_=artifacts.c.id.type),
        lambda child: child.c.kind != ArtifactKind.DAG_VERSION.value,
    )
    return select(line).order_by(line.c.depth.desc())


_CHAIN = _chain_query()


def join_target_skips(
    source: FromClause, target_id: ColumnElement[Any]
) -> tuple[FromClause, list[ColumnElement[Any]]]:
    """``source`` (whose ``target_id`` names an artifact, or nothing) outer-joined with
    that artifact and its skip, and the columns that read their skip-list nodes, for
    ``remember_skip_nodes``."""
    target = artifacts.alias("target")
    skip = artifacts.alias("target_skip")
    joined = source.outerjoin(target, target.c.id == target_id).outerjoin(
        skip, skip.c.id == target.c.skip_id
    )
    columns: list[ColumnElement[Any]] = [
        target.c.generation.label("target_generation"),
        target.c.skip_id.label("target_skip_id"),
        skip.c.generation.label("skip_generation"),
        skip.c.skip_id.label("skip_skip_id"),
    ]
    return joined, columns


def remember_skip_nodes(session: Session, target_id: uuid.UUID | None, row: Any) -> None:
    """Keep, for this transaction, the skip-list nodes a ``join_target_skips`` row read."""
    if target_id is None or row.target_generation is None or row.skip_generation is None:
        return
    known = session.info.setdefault(SKIP_NODES, {})
    known[target_id] = SkipNode(row.target_generation, row.target_skip_id)
    known[row.target_skip_id] = SkipNode(row.skip_generation, row.skip_skip_id)
