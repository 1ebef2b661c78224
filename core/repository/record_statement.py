"""Postgres: a commit record written in one statement.

An output commit writes a blob's entry, a version and the blobs it names, a move (of a
tag, with its history row, or of a run's staged head) and the run's values: five
statements, five round trips, and psycopg's pipeline for the values. Here they are the
data-modifying parts of one ``WITH`` statement. Each part sees the table as it was when
the statement began, and the foreign keys are checked at its end, when every row is in.
The move happens only if the new version was inserted (another writer may have added
the same version first) and only from the expected revision; the statement returns
both, and the caller rolls the unit of work back when either failed.
"""

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.orm import Session

from core.repository.errors import missing_rows_not_found
from core.storage.commit_record import CommitRecord, NewVersion
from core.storage.skip_list import SkipNode

_BLOBS = """new_blobs AS (
    INSERT INTO cas_blobs (cas_id, size, media_type, created_at)
    SELECT b.cas_id, b.size, b.media_type, :at
    FROM unnest(CAST(:blob_ids AS varchar[]), CAST(:blob_sizes AS bigint[]),
                CAST(:blob_types AS varchar[])) AS b (cas_id, size, media_type)
    ON CONFLICT (cas_id) DO NOTHING
)"""
_VERSION = """new_version AS (
    INSERT INTO artifacts (id, kind, version_hash, cas_id, parent_id, merged_id,
                           generation, skip_id, name, created_at, created_by, metadata)
    VALUES (:id, :kind, :version_hash, :cas_id, :parent_id, :merged_id,
            :generation, :skip_id, :name, :at, :created_by, :metadata)
    ON CONFLICT (version_hash) DO NOTHING
    RETURNING id
), new_refs AS (
    INSERT INTO blob_refs (artifact_id, cas_id)
    SELECT new_version.id, r.cas_id
    FROM new_version, unnest(CAST(:refs AS varchar[])) AS r (cas_id)
)"""
_TAG_MOVE = """moved AS (
    UPDATE tags SET target_id = :to_target_id, target_kind = :target_kind,
                    revision = tags.revision + 1, updated_at = :at, updated_by = :moved_by
    WHERE name = :tag AND target_id = :from_target_id AND revision = :expected_revision
          {created}
    RETURNING revision
), history AS (
    INSERT INTO tag_moves (id, tag_name, from_target_id, to_target_id, revision, moved_at,
                           moved_by, reason, run_id)
    SELECT nextval('tag_move_id_seq'), :tag, :from_target_id, :to_target_id,
           moved.revision, :at, :moved_by, :reason, :moved_in
    FROM moved
)"""
_HEAD_MOVE = """moved AS (
    UPDATE runs SET head_id = :to_target_id, head_revision = :expected_revision + 1
    WHERE run_id = :run_id AND head_revision = :expected_revision {created}
    RETURNING head_revision AS revision
)"""
_RUN_VALUES = """run_values AS (
    INSERT INTO run_io (run_id, direction, node, partition_key, cas_id, media_type, size,
                        recorded_at)
    SELECT :run_id, v.direction, v.node, v.partition_key, v.cas_id, v.media_type, v.size, :at
    FROM unnest(CAST(:value_directions AS varchar[]), CAST(:value_nodes AS varchar[]),
                CAST(:value_partitions AS varchar[]), CAST(:value_ids AS varchar[]),
                CAST(:value_types AS varchar[]), CAST(:value_sizes AS bigint[]))
         AS v (direction, node, partition_key, cas_id, media_type, size)
    ON CONFLICT (run_id, direction, node, partition_key) DO UPDATE
    SET cas_id = excluded.cas_id, media_type = excluded.media_type, size = excluded.size,
        recorded_at = excluded.recorded_at
)"""


@dataclass(frozen=True)
class Written:
    """What the statement did: whether it inserted the record's version (true when the
    record has none), and the move's new revision (0 when it moves nothing; ``None``
    when the move lost)."""

    created: bool
    revision: int | None


def fits(record: CommitRecord) -> bool:
    """Whether one statement can write ``record``: it moves a tag that exists (a tag
    created or moved from nothing takes the repositories' way), a staged head, or
    nothing."""
    swap = record.swap
    return swap is None or swap.from_target_id is not None


@missing_rows_not_found
def write(session: Session, record: CommitRecord, skip: SkipNode | None) -> Written:
    """Write ``record`` (``skip``: its new version's pointers) in one statement."""
    version, swap, staged = record.version, record.swap, record.staged
    move = "tag" if swap is not None else "head" if staged is not None else None
    statement = _statement(version is not None, move, bool(record.run_values))
    params: dict[str, Any] = {
        "at": record.at,
        "blob_ids": [blob.cas_id for blob in record.blobs],
        "blob_sizes": [blob.size for blob in record.blobs],
        "blob_types": [blob.media_type for blob in record.blobs],
    }
    if version is not None:
        assert skip is not None, "a new version has its pointers"
        params |= _version_params(version, skip)
    if swap is not None:
        params |= {
            "tag": swap.tag,
            "from_target_id": swap.from_target_id,
            "expected_revision": swap.expected_revision,
            "to_target_id": swap.to_target_id,
            "target_kind": swap.target_kind.value,
            "moved_by": swap.moved_by,
            "reason": swap.reason,
            "moved_in": swap.run_id,
        }
    elif staged is not None:
        params |= {
            "run_id": staged.run_id,
            "expected_revision": staged.expected_revision,
            "to_target_id": staged.to_target_id,
        }
    if record.run_values:
        values = record.run_values
        params |= {
            "run_id": record.run_id,
            "value_directions": [value.direction.value for value in values],
            "value_nodes": [value.node for value in values],
            "value_partitions": [value.partition_key or "" for value in values],
            "value_ids": [value.cas_id for value in values],
            "value_types": [value.media_type for value in values],
            "value_sizes": [value.size for value in values],
        }
    created, revision = session.execute(statement, params).one()
    return Written(bool(created), revision)


def _version_params(version: NewVersion, skip: SkipNode) -> dict[str, Any]:
    return {
        "id": version.id,
        "kind": version.kind.value,
        "version_hash": version.version_hash,
        "cas_id": version.cas_id,
        "parent_id": version.parent_id,
        "merged_id": version.merged_id,
        "generation": skip.generation,
        "skip_id": skip.skip_id,
        "name": version.name,
        "created_by": version.created_by,
        "metadata": version.metadata_json,
        "refs": sorted(version.refs),
    }


@functools.cache
def _statement(versioned: bool, move: str | None, valued: bool) -> TextClause:
    """The statement for each shape of record, built once."""
    inserted = "EXISTS (SELECT FROM new_version)" if versioned else "true"
    created = f"AND {inserted}" if versioned else ""
    parts = [_BLOBS]
    if versioned:
        parts.append(_VERSION)
    if move == "tag":
        parts.append(_TAG_MOVE.format(created=created))
    elif move == "head":
        parts.append(_HEAD_MOVE.format(created=created))
    if valued:
        parts.append(_RUN_VALUES)
    revision = "(SELECT revision FROM moved)" if move else "0"
    return text(f"WITH {', '.join(parts)} SELECT {inserted}, {revision}")
