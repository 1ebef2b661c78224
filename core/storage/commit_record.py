"""A version commit as one decision, and the store that carries it out.

A commit (a workflow commit, a pipeline's output) is decided first, from what the unit
of work reads through its ``CommitStore``, and then handed to the store whole as one
``CommitRecord``: the blobs it adds, the new version (if any), the tag's move (if any)
and the run's values. A store applies a record all or nothing, inside the unit of work
that decided it; how (statements at once, or written behind and applied later) is the
store's business, never the caller's.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from core.domain import ArtifactKind, Direction, TagPolicy


@dataclass(frozen=True)
class BlobEntry:
    """A blob the record adds to the catalog (kept as it is when it is there already)."""

    cas_id: str
    size: int
    media_type: str


@dataclass(frozen=True)
class NewVersion:
    """An artifact the record adds; ``refs`` are the blobs its content names."""

    id: uuid.UUID
    kind: ArtifactKind
    version_hash: str
    cas_id: str
    parent_id: uuid.UUID | None
    name: str
    created_by: str | None
    metadata_json: str
    refs: tuple[str, ...] = ()
    merged_id: uuid.UUID | None = None
    """A merge version's second parent."""

    def row(self, at: datetime) -> dict[str, Any]:
        """Its ``artifacts`` row, created ``at`` (its skip-list columns aside)."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "version_hash": self.version_hash,
            "cas_id": self.cas_id,
            "parent_id": self.parent_id,
            "merged_id": self.merged_id,
            "name": self.name,
            "created_at": at,
            "created_by": self.created_by,
            "metadata": self.metadata_json,
        }


@dataclass(frozen=True)
class TagSwap:
    """The tag's compare-and-swap: from ``from_target_id`` at ``expected_revision`` to
    ``to_target_id`` (a record's new version, or a version that exists)."""

    tag: str
    from_target_id: uuid.UUID | None
    expected_revision: int
    to_target_id: uuid.UUID
    target_kind: ArtifactKind
    moved_by: str | None
    reason: str | None
    run_id: str | None


@dataclass(frozen=True)
class HeadMove:
    """A ``publish="run"`` run's staged head moved, by compare-and-swap: from
    ``from_target_id`` after ``expected_revision`` moves, to ``to_target_id``."""

    run_id: str
    from_target_id: uuid.UUID | None
    expected_revision: int
    to_target_id: uuid.UUID


@dataclass(frozen=True)
class RunValue:
    """A value a run read or wrote (the run's lineage)."""

    direction: Direction
    node: str
    partition_key: str | None
    cas_id: str
    media_type: str
    size: int


@dataclass(frozen=True)
class CommitRecord:
    """One commit, decided: everything it writes, at one time ``at`` (naive UTC)."""

    at: datetime
    blobs: tuple[BlobEntry, ...] = ()
    version: NewVersion | None = None
    swap: TagSwap | None = None
    staged: HeadMove | None = None
    run_id: str | None = None
    run_values: tuple[RunValue, ...] = ()

    def __post_init__(self) -> None:
        if self.run_values and self.run_id is None:
            raise ValueError("a record with run values names their run")
        if self.swap is not None and self.staged is not None:
            raise ValueError("a record moves a tag or a run's staged head, not both")


@dataclass(frozen=True)
class Head:
    """What a tag points at now: ``target_id`` ``None`` for a tag never created
    (revision 0) or deleted (its revision goes on counting)."""

    target_id: uuid.UUID | None
    revision: int


class CommitStore(Protocol):
    """What a commit reads to decide, and where it hands its decision."""

    def head(self, tag: str) -> Head:
        """The tag as this unit of work sees it."""
        ...

    def staged_head(self, run_id: str) -> Head:
        """A ``publish="run"`` run's staged head as this unit of work sees it."""
        ...

    def policies(self) -> tuple[TagPolicy, ...]:
        """Every tag policy, by pattern (a commit that moves a tag obeys the one that
        governs it: ``core.service.tag_policies``)."""
        ...

    def version_id(self, version_hash: str, parent_id: uuid.UUID | None = None) -> uuid.UUID | None:
        """The artifact with ``version_hash`` (on ``parent_id``, when the caller knows
        it), if the catalog has one."""
        ...

    def missing_blobs(self, cas_ids: frozenset[str]) -> frozenset[str]:
        """Those of ``cas_ids`` that the catalog has no entry for."""
        ...

    def apply_line(self, records: Sequence[CommitRecord]) -> int | None:
        """``apply`` each of ``records``, whose swaps move one tag on one after another:
        the last revision, or ``None`` (the caller rolls back)."""
        ...

    def apply(self, record: CommitRecord) -> int | None:
        """Write ``record`` in this unit of work: the tag's new revision, or the staged
        head's (``0`` when the record moves neither), or ``None`` when another writer got
        there first (the tag or head moved, or the record's new version was added
        meanwhile): then none of its version, moves or run values was written (its blob
        entries may have been, which is harmless), and the caller rolls back or decides
        again."""
        ...
