"""An in-memory unit of work: fake repositories with the methods the services use, over
a fake catalog whose state a unit of work copies when it opens and hands back only when
it commits (so a rollback discards). ``fake_services`` composes the services over it, as
``core.connect`` does over a database: no database is opened."""

import contextlib
import copy
import itertools
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from core.bootstrap import UseCases, compose
from core.domain import (
    Artifact,
    ArtifactKind,
    Blob,
    Direction,
    NodeValue,
    PublishMode,
    Run,
    RunIO,
    RunOutcome,
    Tag,
    TagMove,
    TagPolicy,
    TagPolicyChange,
)
from core.errors import NotFoundError
from core.repository.commit_store import RepositoryCommitStore
from core.storage.blobstore import FolderBlobStore
from core.storage.uow import Publishes

T = TypeVar("T")


def _now(at: datetime | None = None) -> datetime:
    """``at`` (naive UTC, as the storage takes times) as the aware time a row hands out,
    or now."""
    return datetime.now(UTC) if at is None else at.replace(tzinfo=UTC)


@dataclass
class CatalogState:
    """Every table, as the fake keeps it."""

    blobs: dict[str, Blob] = field(default_factory=dict)
    artifacts: dict[uuid.UUID, Artifact] = field(default_factory=dict)
    refs: dict[uuid.UUID, frozenset[str]] = field(default_factory=dict)
    tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Tag rows by name: a deleted tag keeps its row with ``target_id`` None."""
    moves: list[TagMove] = field(default_factory=list)
    runs: dict[str, Run] = field(default_factory=dict)
    head_moves: dict[str, int] = field(default_factory=dict)
    """How many times each run's staged head moved."""
    run_io: dict[tuple[str, Direction, str, str], RunIO] = field(default_factory=dict)
    policies: dict[str, TagPolicy] = field(default_factory=dict)
    policy_changes: list[TagPolicyChange] = field(default_factory=list)


class FakeBlobs:
    def __init__(self, state: CatalogState) -> None:
        self._state = state

    def add(
        self, entries: Sequence[tuple[str, int, str]], created_at: datetime | None = None
    ) -> None:
        for cas_id, size, media_type in entries:
            self._state.blobs.setdefault(cas_id, Blob(cas_id, size, media_type, _now(created_at)))

    def missing(self, cas_ids: frozenset[str]) -> frozenset[str]:
        return frozenset(cas_id for cas_id in cas_ids if cas_id not in self._state.blobs)

    def get(self, cas_id: str) -> Blob | None:
        return self._state.blobs.get(cas_id)

    def _referenced_ids(self) -> set[str]:
        ids = {artifact.cas_id for artifact in self._state.artifacts.values()}
        ids.update(cas_id for refs in self._state.refs.values() for cas_id in refs)
        ids.update(io.cas_id for io in self._state.run_io.values())
        return ids

    def unreferenced(self) -> list[Blob]:
        referenced = self._referenced_ids()
        return [b for k, b in sorted(self._state.blobs.items()) if k not in referenced]

    def delete_if_unreferenced(self, cas_id: str) -> bool:
        if cas_id in self._state.blobs and cas_id not in self._referenced_ids():
            del self._state.blobs[cas_id]
            return True
        return False

    def referenced(self) -> Iterator[Blob]:
        referenced = self._referenced_ids()
        return iter([b for k, b in sorted(self._state.blobs.items()) if k in referenced])

    def known(self, cas_ids: list[str]) -> set[str]:
        return {cas_id for cas_id in cas_ids if cas_id in self._state.blobs}


class FakeArtifacts:
    def __init__(self, state: CatalogState) -> None:
        self._state = state

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
        if self.get_by_version_hash(version_hash) is not None:
            return None
        artifact = Artifact(
            artifact_id or uuid.uuid4(), kind, version_hash, cas_id, parent_id, name,
            _now(created_at), created_by, json.loads(metadata_json), merged_id,
        )  # fmt: skip
        self._state.artifacts[artifact.id] = artifact
        return artifact

    def add_refs(self, artifact_id: uuid.UUID, cas_ids: frozenset[str]) -> None:
        self._state.refs[artifact_id] = self._state.refs.get(artifact_id, frozenset()) | cas_ids

    def get(self, artifact_id: uuid.UUID) -> Artifact | None:
        return self._state.artifacts.get(artifact_id)

    def get_by_version_hash(self, version_hash: str) -> Artifact | None:
        found = [a for a in self._state.artifacts.values() if a.version_hash == version_hash]
        return found[0] if found else None

    def find_by_version_prefix(self, prefix: str, limit: int) -> list[Artifact]:
        found = [a for a in self._state.artifacts.values() if a.version_hash.startswith(prefix)]
        return found[:limit]

    def ancestry(self, head_id: uuid.UUID, limit: int) -> list[Artifact]:
        line: list[Artifact] = []
        artifact = self.get(head_id)
        while artifact is not None and len(line) < limit:
            line.append(artifact)
            artifact = None if artifact.parent_id is None else self.get(artifact.parent_id)
        return line

    def ancestors(self, head_id: uuid.UUID, limit: int) -> dict[uuid.UUID, int]:
        depths: dict[uuid.UUID, int] = {}
        frontier = [(head_id, 0)]
        while frontier:
            artifact_id, depth = frontier.pop(0)
            artifact = self.get(artifact_id)
            if artifact is None or artifact_id in depths or depth > limit:
                continue
            depths[artifact_id] = depth
            frontier += [(p, depth + 1) for p in (artifact.parent_id, artifact.merged_id) if p]
        return depths

    def referencing(self, cas_id: str) -> list[uuid.UUID]:
        return sorted(
            a.id
            for a in self._state.artifacts.values()
            if a.cas_id == cas_id or cas_id in self._state.refs.get(a.id, frozenset())
        )

    def chain(self, head_id: uuid.UUID) -> list[Artifact]:
        chain: list[Artifact] = []
        artifact = self.get(head_id)
        while artifact is not None:
            chain.append(artifact)
            if artifact.kind is ArtifactKind.DAG_VERSION or artifact.parent_id is None:
                break
            artifact = self.get(artifact.parent_id)
        return chain[::-1]


class FakeTags:
    def __init__(self, state: CatalogState, move_ids: Iterator[int]) -> None:
        self._state = state
        self._move_ids = move_ids
        """Move ids come from a sequence that a rollback does not take back (as
        Postgres' does): ids are increasing, not contiguous."""

    def _tag(self, row: dict[str, Any]) -> Tag | None:
        return None if row["target_id"] is None else Tag(**row)

    def get(self, name: str) -> Tag | None:
        row = self._state.tags.get(name)
        return None if row is None else self._tag(row)

    def lock(self, name: str) -> None:
        return None

    def revision(self, name: str) -> int:
        row = self._state.tags.get(name)
        return 0 if row is None else int(row["revision"])

    def list_live(self) -> list[Tag]:
        return [t for n in sorted(self._state.tags) if (t := self.get(n)) is not None]

    def insert(
        self,
        name: str,
        target_id: uuid.UUID,
        target_kind: ArtifactKind,
        updated_by: str | None,
        at: datetime | None = None,
    ) -> Tag | None:
        if name in self._state.tags:
            return None
        now = _now(at)
        row = {
            "name": name, "target_kind": target_kind, "target_id": target_id, "revision": 1,
            "created_at": now, "updated_at": now, "updated_by": updated_by,
        }  # fmt: skip
        self._state.tags[name] = row
        return self._tag(row)

    def swap(
        self,
        name: str,
        *,
        expected_target_id: uuid.UUID | None,
        expected_revision: int | None,
        new_target_id: uuid.UUID | None,
        new_target_kind: ArtifactKind | None,
        updated_by: str | None,
        at: datetime | None = None,
    ) -> int | None:
        row = self._state.tags.get(name)
        if (
            row is None
            or row["target_id"] != expected_target_id
            or expected_revision not in (None, row["revision"])
        ):
            return None
        row.update(
            target_id=new_target_id,
            target_kind=new_target_kind,
            revision=row["revision"] + 1,
            updated_at=_now(at),
            updated_by=updated_by,
        )
        return int(row["revision"])

    def append_move(
        self,
        name: str,
        *,
        from_target_id: uuid.UUID | None,
        to_target_id: uuid.UUID | None,
        revision: int,
        moved_by: str | None,
        reason: str | None,
        run_id: str | None,
        at: datetime | None = None,
    ) -> None:
        move = TagMove(
            next(self._move_ids), name, from_target_id, to_target_id, revision, _now(at),
            moved_by, reason, run_id,
        )  # fmt: skip
        self._state.moves.append(move)

    def move(
        self,
        name: str,
        *,
        expected_target_id: uuid.UUID | None,
        expected_revision: int | None,
        new_target_id: uuid.UUID | None,
        new_target_kind: ArtifactKind | None,
        moved_by: str | None,
        reason: str | None,
        run_id: str | None,
        at: datetime | None = None,
    ) -> int | None:
        revision = self.swap(
            name, expected_target_id=expected_target_id, expected_revision=expected_revision,
            new_target_id=new_target_id, new_target_kind=new_target_kind, updated_by=moved_by,
            at=at,
        )  # fmt: skip
        creating = expected_target_id is None and expected_revision in (None, 0)
        if revision is None and creating and new_target_id is not None:
            assert new_target_kind is not None
            created = self.insert(name, new_target_id, new_target_kind, moved_by, at)
            revision = created and created.revision
        if revision is not None:
            self.append_move(
                name, from_target_id=expected_target_id, to_target_id=new_target_id,
                revision=revision, moved_by=moved_by, reason=reason, run_id=run_id, at=at,
            )  # fmt: skip
        return revision

    def history(self, name: str) -> list[TagMove]:
        return [move for move in self._state.moves if move.tag_name == name]

    def moves_after(self, name: str, after_id: int, limit: int) -> list[TagMove]:
        return [move for move in self.history(name) if move.id > after_id][:limit]

    def move_at(self, name: str, position: int) -> TagMove | None:
        history = self.history(name)[::-1]
        return history[position] if position < len(history) else None

    def last_move(self, name: str) -> TagMove | None:
        return self.move_at(name, 0)


class FakeRuns:
    def __init__(self, state: CatalogState) -> None:
        self._state = state

    def get(self, run_id: str, *, lock: bool = False) -> Run | None:
        return self._state.runs.get(run_id)  # one fake unit of work at a time: no lock

    def find_by_prefix(self, prefix: str, limit: int) -> list[Run]:
        return [r for k, r in sorted(self._state.runs.items()) if k.startswith(prefix)][:limit]

    def recent(self, limit: int) -> list[Run]:
        return sorted(self._state.runs.values(), key=lambda r: r.started_at, reverse=True)[:limit]

    def insert(
        self,
        run_id: str,
        *,
        snapshot_id: uuid.UUID,
        base_id: uuid.UUID | None,
        tag: str,
        job_name: str | None,
        status: str,
        publish: PublishMode = PublishMode.OUTPUT,
        head_id: uuid.UUID | None = None,
    ) -> Run | None:
        if run_id in self._state.runs:
            return None
        run = Run(
            run_id, snapshot_id, base_id, tag, status, _now(), None, job_name, publish, head_id
        )
        self._state.runs[run_id] = run
        self._state.head_moves[run_id] = 0
        return run

    def staged_head(self, run_id: str) -> tuple[uuid.UUID | None, int] | None:
        run = self._state.runs.get(run_id)
        if run is None:
            return None
        return run.head_id or run.base_id, self._state.head_moves[run_id]

    def move_head(
        self, run_id: str, *, expected_revision: int, new_head_id: uuid.UUID
    ) -> int | None:
        if self._state.head_moves.get(run_id) != expected_revision:
            return None
        self._state.runs[run_id] = replace(self._state.runs[run_id], head_id=new_head_id)
        self._state.head_moves[run_id] = expected_revision + 1
        return expected_revision + 1

    def record_outcome(self, run_id: str, outcome: RunOutcome) -> None:
        self._state.runs[run_id] = replace(self._state.runs[run_id], outcome=outcome)

    def lock(self, run_id: str) -> None:
        return None

    def finish(self, run_id: str, status: str, finished_at: datetime | None) -> Run | None:
        run = self._state.runs.get(run_id)
        if run is None or run.status != "started":
            return None
        run = replace(run, status=status, finished_at=finished_at or _now())
        self._state.runs[run_id] = run
        return run


class FakeRunIO:
    def __init__(self, state: CatalogState) -> None:
        self._state = state

    def record(
        self,
        run_id: str,
        entries: Sequence[tuple[Direction, NodeValue]],
        recorded_at: datetime | None = None,
    ) -> None:
        if run_id not in self._state.runs:
            raise NotFoundError(f"run {run_id!r} not found")
        for direction, v in entries:
            key = (run_id, direction, v.node, v.partition_key or "")
            self._state.run_io[key] = RunIO(
                run_id, direction, v.node, v.partition_key, v.cas_id, v.media_type, v.size,
                _now(recorded_at),
            )  # fmt: skip

    def get(
        self, run_id: str, direction: Direction, node: str, partition_key: str | None
    ) -> RunIO | None:
        return self._state.run_io.get((run_id, direction, node, partition_key or ""))

    def for_run(self, run_id: str) -> list[RunIO]:
        return [io for key, io in sorted(self._state.run_io.items()) if key[0] == run_id]


class FakeTagPolicies:
    def __init__(self, state: CatalogState) -> None:
        self._state = state

    def all(self) -> tuple[TagPolicy, ...]:
        return tuple(policy for _, policy in sorted(self._state.policies.items()))

    def get(self, pattern: str) -> TagPolicy | None:
        return self._state.policies.get(pattern)

    def lock(self, pattern: str) -> None:
        pass

    def put(
        self,
        pattern: str,
        *,
        immutable: bool,
        protected: bool,
        updated_by: str | None,
        at: datetime | None = None,
        exists: bool,
    ) -> TagPolicy:
        policy = TagPolicy(pattern, immutable, protected, _now(at), updated_by)
        self._state.policies[pattern] = policy
        return policy

    def delete(self, pattern: str) -> None:
        self._state.policies.pop(pattern, None)

    def append_change(
        self,
        pattern: str,
        old: TagPolicy | None,
        new: TagPolicy | None,
        *,
        changed_by: str | None,
        at: datetime | None = None,
    ) -> None:
        change = TagPolicyChange(
            len(self._state.policy_changes) + 1, pattern,
            old and old.immutable, old and old.protected,
            new and new.immutable, new and new.protected, _now(at), changed_by,
        )  # fmt: skip
        self._state.policy_changes.append(change)

    def history(self, pattern: str | None) -> list[TagPolicyChange]:
        return [c for c in self._state.policy_changes if pattern in (None, c.pattern)]


class FakeUnitOfWork:
    """The repositories over a private copy of the catalog, until ``commit()``."""

    def __init__(self, factory: "FakeUnitOfWorkFactory", *, deferred: bool) -> None:
        self._factory = factory
        self.deferred = deferred
        self.opened_at = factory.version
        self.state = copy.deepcopy(factory.state)
        self.blobs = FakeBlobs(self.state)
        self.artifacts = FakeArtifacts(self.state)
        self.tags = FakeTags(self.state, factory.move_ids)
        self.runs = FakeRuns(self.state)
        self.run_io = FakeRunIO(self.state)
        self.tag_policies = FakeTagPolicies(self.state)
        self.commits = RepositoryCommitStore(
            cast(Any, self.blobs), cast(Any, self.artifacts), cast(Any, self.tags),
            cast(Any, self.runs), cast(Any, self.run_io), cast(Any, self.tag_policies),
        )  # fmt: skip
        self.committed = False
        self._settles: list[Callable[[bool], None]] = []
        self._after_commit: list[Callable[[], None]] = []
        self._staged: dict[int, dict[Any, Any]] = {}

    def commit(self) -> None:
        assert not self.committed, "a unit of work commits once"
        for settle in self._settles:
            settle(True)
        self.committed = True
        self._factory.commit(self)
        for call in self._after_commit:
            call()

    def rollback(self) -> None:
        for settle in self._settles:
            with contextlib.suppress(Exception):
                settle(False)

    def on_end(self, settle: Callable[[bool], None]) -> None:
        self._settles.append(settle)

    def after_commit(self, call: Callable[[], None]) -> None:
        self._after_commit.append(call)

    def staged(self, cache: Publishes, *, create: bool = False) -> dict[Any, Any] | None:
        entries = self._staged.get(id(cache))
        if entries is None and create:
            entries = self._staged[id(cache)] = {}
            self.after_commit(lambda: cache.publish(entries))
        return entries


class FakeUnitOfWorkFactory:
    """Opens fake units of work; records each commit (its unit of work) and rollback.

    A unit of work changes a copy of the catalog that its commit makes current, so the
    fake does not model transactions that overlap: a commit after another unit of work
    committed since it opened fails the test instead of losing that one's writes. A
    deferred unit of work is an ordinary one (as on Postgres; whether DuckDB can defer is
    the storage's business, tested on DuckDB)."""

    many_writers = False
    """One writer at a time, as on DuckDB: publishes do not queue."""

    def one_connection(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def __init__(self) -> None:
        self.state = CatalogState()
        self.version = 0
        self.move_ids = itertools.count(1)
        self.commits: list[FakeUnitOfWork] = []
        self.rollbacks = 0
        self.opened: list[FakeUnitOfWork] = []

    def commit(self, work: FakeUnitOfWork) -> None:
        if work.opened_at != self.version:
            raise AssertionError(
                "another unit of work committed while this one was open: the fake does not "
                "model overlapping transactions"
            )
        self.state = work.state
        self.version += 1
        self.commits.append(work)

    @contextlib.contextmanager
    def __call__(self, *, deferred: bool = False) -> Iterator[FakeUnitOfWork]:
        work = FakeUnitOfWork(self, deferred=deferred)
        self.opened.append(work)
        try:
            yield work
        finally:
            if not work.committed:
                self.rollbacks += 1
                work.rollback()

    def run(
        self,
        step: Callable[[FakeUnitOfWork], T],
        *,
        lost: type[Exception] | None = None,
        attempts: int = 1,
        deferred: bool = False,
        in_place: bool = False,
    ) -> T:
        """As ``UnitOfWorkFactory.run`` outside a caller's transaction (the fake has no
        caller's transactions, so ``in_place`` changes nothing; its deferred units of work
        never refuse)."""
        for attempt in range(1, attempts + 1):
            try:
                with self(deferred=deferred) as work:
                    result = step(work)
                    work.commit()
                return result
            except Exception as exc:
                if lost is None or not isinstance(exc, lost) or attempt == attempts:
                    raise
        raise AssertionError("unreachable")


@dataclass
class FakeCatalog:
    services: UseCases
    uow: FakeUnitOfWorkFactory


def fake_services(blob_root: Path, *, compaction_bound: int = 32) -> FakeCatalog:
    """The services over a fake unit of work and a blob store in ``blob_root``."""
    uow = FakeUnitOfWorkFactory()
    services = compose(
        cast(Any, uow), FolderBlobStore(blob_root), compaction_bound=compaction_bound
    )
    return FakeCatalog(services, uow)
