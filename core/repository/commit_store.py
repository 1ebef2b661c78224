"""A ``CommitStore`` over the repositories: a commit record's rows written at once, in
the unit of work's transaction."""

import uuid
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy.orm import Session

from core.domain import NodeValue, TagPolicy
from core.errors import NotFoundError
from core.repository import record_statement
from core.repository.artifact import ArtifactRepository
from core.repository.cas_blob import CasBlobRepository
from core.repository.run import RunIORepository, RunRepository
from core.repository.tag import TagRepository
from core.repository.tag_policy import TagPolicyRepository
from core.storage.commit_record import CommitRecord, Head


class RepositoryCommitStore:
    """Reads and writes through one unit of work's repositories."""

    def __init__(
        self,
        blobs: CasBlobRepository,
        artifacts: ArtifactRepository,
        tags: TagRepository,
        runs: RunRepository,
        run_io: RunIORepository,
        policies: TagPolicyRepository,
        *,
        postgres: Session | None = None,
    ) -> None:
        self._blobs = blobs
        self._artifacts = artifacts
        self._tags = tags
        self._runs = runs
        self._run_io = run_io
        self._policies = policies
        self._postgres = postgres
        """On Postgres, the unit of work's session: ``head`` reads the policies too, and a
        record is written in one statement (each saves a commit round trips; DuckDB
        keeps the policies in memory and journals its records)."""

    def head(self, tag: str) -> Head:
        if self._postgres is not None:  # the policies come along: the commit reads them next
            found, _ = self._policies.all_with_tag(tag)
            return Head(None, 0) if found is None else Head(*found)
        live = self._tags.get(tag)
        if live is not None:
            return Head(live.target_id, live.revision)
        return Head(None, self._tags.revision(tag))

    def staged_head(self, run_id: str) -> Head:
        found = self._runs.staged_head(run_id)
        if found is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return Head(*found)

    def policies(self) -> tuple[TagPolicy, ...]:
        return self._policies.all()

    def version_id(self, version_hash: str, parent_id: uuid.UUID | None = None) -> uuid.UUID | None:
        found = self._artifacts.get_by_version_hash(version_hash)
        return None if found is None else found.id

    def missing_blobs(self, cas_ids: frozenset[str]) -> frozenset[str]:
        return self._blobs.missing(cas_ids)

    def apply(self, record: CommitRecord) -> int | None:
        if self._postgres is not None and record_statement.fits(record):
            return self._apply_at_once(self._postgres, record)
        if record.blobs:
            entries = [(blob.cas_id, blob.size, blob.media_type) for blob in record.blobs]
            self._blobs.add(entries, record.at)
        if (version := record.version) is not None:
            created = self._artifacts.add(
                kind=version.kind,
                version_hash=version.version_hash,
                cas_id=version.cas_id,
                parent_id=version.parent_id,
                name=version.name,
                created_by=version.created_by,
                metadata_json=version.metadata_json,
                artifact_id=version.id,
                created_at=record.at,
                merged_id=version.merged_id,
            )
            if created is None:  # another writer added this version meanwhile
                return None
            self._artifacts.add_refs(version.id, frozenset(version.refs))
        revision = 0
        if (swap := record.swap) is not None:
            moved = self._tags.move(
                swap.tag,
                expected_target_id=swap.from_target_id,
                expected_revision=swap.expected_revision,
                new_target_id=swap.to_target_id,
                new_target_kind=swap.target_kind,
                moved_by=swap.moved_by,
                reason=swap.reason,
                run_id=swap.run_id,
                at=record.at,
            )
            if moved is None:
                return None
            revision = moved
        if (staged := record.staged) is not None:
            moved = self._runs.move_head(
                staged.run_id,
                expected_revision=staged.expected_revision,
                new_head_id=staged.to_target_id,
            )
            if moved is None:
                return None
            revision = moved
        if record.run_id is not None and record.run_values:
            values = [
                (v.direction, NodeValue(v.node, v.partition_key, v.cas_id, v.media_type, v.size))
                for v in record.run_values
            ]
            self._run_io.record(record.run_id, values, record.at)
        return revision

    def _apply_at_once(self, session: Session, record: CommitRecord) -> int | None:
        """``apply`` in one statement (``core.repository.record_statement``)."""
        new_blobs = set(self._blobs.unrecorded(blob.cas_id for blob in record.blobs))
        blobs = tuple(blob for blob in record.blobs if blob.cas_id in new_blobs)
        version = record.version
        skip = (
            None
            if version is None
            else self._artifacts.new_skip_node(version.id, version.parent_id)
        )
        written = record_statement.write(session, replace(record, blobs=blobs), skip)
        self._blobs.recorded(new_blobs)
        if not written.created:  # another writer added this version meanwhile
            return None
        if version is not None and skip is not None:
            self._artifacts.added(version.id, skip)
        return written.revision

    def apply_line(self, records: Sequence[CommitRecord]) -> int | None:
        """Postgres: ``apply`` for records that each move one tag on from the one before
        (a version of their own or one that exists; no staged heads, no run values), in
        a few statements whatever their number."""
        if any(record.staged or record.run_values or not record.swap for record in records):
            raise ValueError("a line of records moves one tag, and only that")
        swaps = [record.swap for record in records if record.swap is not None]
        blobs = {blob.cas_id: blob for record in records for blob in record.blobs}
        if blobs:
            entries = [(blob.cas_id, blob.size, blob.media_type) for blob in blobs.values()]
            self._blobs.add(entries, records[0].at)
        versions = [(record.version, record.at) for record in records if record.version]
        if versions and not self._artifacts.add_line(*zip(*versions, strict=True)):
            return None
        return self._tags.move_line(swaps[0].tag, swaps, [record.at for record in records])
