"""Commits written behind: journaled now, applied to the DuckDB file later.

While one process holds the DuckDB file (``core.storage.duckdb.lease``) nobody else reads
it, so a commit need not be statements at once. A deferred transaction's commit store
(``JournaledCommitStore``) answers the few reads a commit decides from (the tag's head,
whether a version or blob exists) from the records this tenure journaled, then from the
file, and takes the decided ``CommitRecord`` whole; the transaction commits by appending
it to the journal (``core.storage.duckdb.journal``), and ``core.storage.duckdb.fold``
later applies the records to the file in one transaction. A commit it cannot take (a tag
created by it, a run not in the file) is ``NotDeferrable``: the unit of work runs again as an
ordinary transaction, which folds first.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.engine import Connection

from core.domain import TagPolicy
from core.storage.commit_record import CommitRecord, Head
from core.storage.duckdb.journal import Journal
from core.storage.duckdb.record_format import encode
from core.storage.models import ArtifactRow, CasBlob, RunRow, TagRow
from core.storage.session_info import NotDeferrable
from core.storage.tag_policies import Memo, read_policies

JournalEntry = tuple[uuid.UUID, CommitRecord]
"""A record and the id its journal line carries."""


@dataclass
class _Index:
    """What the records say of tags, versions and blobs (the latest wins)."""

    heads: dict[str, Head] = field(default_factory=dict)
    staged_heads: dict[str, Head] = field(default_factory=dict)
    versions: dict[str, uuid.UUID] = field(default_factory=dict)
    ids: set[uuid.UUID] = field(default_factory=set)
    blobs: set[str] = field(default_factory=set)

    def add(self, record: CommitRecord) -> None:
        self.blobs.update(blob.cas_id for blob in record.blobs)
        if record.version is not None:
            self.versions[record.version.version_hash] = record.version.id
            self.ids.add(record.version.id)
        if record.swap is not None:
            swap = record.swap
            self.heads[swap.tag] = Head(swap.to_target_id, swap.expected_revision + 1)
        if record.staged is not None:
            staged = record.staged
            self.staged_heads[staged.run_id] = Head(
                staged.to_target_id, staged.expected_revision + 1
            )


class WriteBehind:
    """The records this process journaled and has not folded, and the one the current
    deferred transaction staged (a transaction is one record: one journal line)."""

    def __init__(self) -> None:
        self._entries: list[JournalEntry] = []
        self._staged: CommitRecord | None = None
        self._index = _Index()

    def __len__(self) -> int:
        """How many journaled records wait to be folded."""
        return len(self._entries)

    def entries(self) -> list[JournalEntry]:
        return list(self._entries)

    def stage(self, record: CommitRecord) -> None:
        if self._staged is not None:
            raise NotDeferrable("a transaction that records two commits is not written behind")
        self._staged = record
        self._index.add(record)

    def commit(self, journal: Journal) -> None:
        """Journal the record the transaction staged (durable when this returns)."""
        staged, self._staged = self._staged, None
        if staged is None:
            return
        entry = (uuid.uuid4(), staged)
        try:
            journal.append(encode(*entry))
        except BaseException:
            self._reindex()
            raise
        self._entries.append(entry)

    def discard(self) -> None:
        """Forget what the transaction staged."""
        if self._staged is not None:
            self._staged = None
            self._reindex()

    def clear(self) -> None:
        """Forget every record (they are in the file now)."""
        self._entries = []
        self._staged = None
        self._reindex()

    def head(self, tag: str) -> Head | None:
        return self._index.heads.get(tag)

    def staged_head(self, run_id: str) -> Head | None:
        return self._index.staged_heads.get(run_id)

    def version_id(self, version_hash: str) -> uuid.UUID | None:
        return self._index.versions.get(version_hash)

    def has_version(self, artifact_id: uuid.UUID) -> bool:
        return artifact_id in self._index.ids

    def has_blob(self, cas_id: str) -> bool:
        return cas_id in self._index.blobs

    def _reindex(self) -> None:
        self._index = _Index()
        for _, record in self._entries:
            self._index.add(record)


tags = TagRow.__table__
artifacts = ArtifactRow.__table__
blobs = CasBlob.__table__
runs = RunRow.__table__


class JournaledCommitStore:
    """A deferred transaction's ``CommitStore``: reads from the journaled records, then
    from the file (which holds everything else, and, while this process holds it, changes
    only through this store: a read of it stays true for the transaction); the record
    staged for the journal."""

    def __init__(self, connection: Connection, behind: WriteBehind, memo: Memo) -> None:
        self._connection = connection
        self._behind = behind
        self._memo = memo
        self._file_heads: dict[str, Head] = {}
        self._file_staged: dict[str, Head] = {}
        self._file_versions: dict[str, uuid.UUID | None] = {}

    def head(self, tag: str) -> Head:
        head = self._behind.head(tag) or self._file_heads.get(tag)
        if head is not None:
            return head
        row = self._connection.execute(
            select(tags.c.target_id, tags.c.revision).where(tags.c.name == tag)
        ).first()
        head = Head(None, 0) if row is None else Head(row.target_id, row.revision)
        self._file_heads[tag] = head
        return head

    def staged_head(self, run_id: str) -> Head:
        head = self._behind.staged_head(run_id) or self._file_staged.get(run_id)
        if head is not None:
            return head
        row = self._connection.execute(
            select(runs.c.head_id, runs.c.base_id, runs.c.head_revision).where(
                runs.c.run_id == run_id
            )
        ).first()
        if row is None:
            raise NotDeferrable(f"run {run_id!r} is not in the file")
        head = Head(row.head_id or row.base_id, row.head_revision)
        self._file_staged[run_id] = head
        return head

    def policies(self) -> tuple[TagPolicy, ...]:
        """From the file (records never change policies), or the lease's memo."""
        return read_policies(self._connection, self._memo)

    def version_id(self, version_hash: str, parent_id: uuid.UUID | None = None) -> uuid.UUID | None:
        found = self._behind.version_id(version_hash)
        # a version's hash names its parent: on a parent not in the file yet, neither is it
        if found is not None or (parent_id is not None and self._behind.has_version(parent_id)):
            return found
        if version_hash not in self._file_versions:
            self._file_versions[version_hash] = self._connection.scalar(
                select(artifacts.c.id).where(artifacts.c.version_hash == version_hash)
            )
        return self._file_versions[version_hash]

    def missing_blobs(self, cas_ids: frozenset[str]) -> frozenset[str]:
        unknown = frozenset(cas_id for cas_id in cas_ids if not self._behind.has_blob(cas_id))
        if not unknown:
            return unknown
        found = self._connection.scalars(select(blobs.c.cas_id).where(blobs.c.cas_id.in_(unknown)))
        return unknown - set(found)

    def apply_line(self, records: Sequence[CommitRecord]) -> int | None:
        if len(records) != 1:
            raise NotDeferrable("a transaction that records two commits is not written behind")
        return self.apply(records[0])

    def apply(self, record: CommitRecord) -> int | None:
        revision = 0
        if (staged := record.staged) is not None:
            current = self.staged_head(staged.run_id)
            if current != Head(staged.from_target_id, staged.expected_revision):
                return None
            revision = staged.expected_revision + 1
        if (swap := record.swap) is not None:
            if swap.from_target_id is None:
                raise NotDeferrable(f"tag {swap.tag!r} is created, not moved")
            if self.head(swap.tag) != Head(swap.from_target_id, swap.expected_revision):
                return None
            revision = swap.expected_revision + 1
        version = record.version
        if version is not None and self.version_id(version.version_hash, version.parent_id):
            return None
        self._behind.stage(record)
        return revision
