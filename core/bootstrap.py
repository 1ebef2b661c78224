"""The composition root: ``connect()`` builds the services over one database and blob root."""

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from core.environment import (
    BLOB_ROOT_ENV,
    CACHE_DIR_ENV,
    CACHE_MAX_BYTES_ENV,
    DATABASE_URL_ENV,
)
from core.errors import ValidationError
from core.repository.unit_of_work import UnitOfWork
from core.service.artifact import ArtifactService
from core.service.asset import AssetService
from core.service.asset_inputs import AssetInputs
from core.service.asset_lineage import RunLineage
from core.service.asset_outputs import AssetOutputs
from core.service.cas import CasService
from core.service.lineage_queries import LineageQueries
from core.service.maintenance import MaintenanceService
from core.service.merges import Merges
from core.service.publish_queue import PublishQueue
from core.service.ref import RefService
from core.service.run import RunService
from core.service.run_publishing import RunPublishing
from core.service.tag import TagService
from core.service.tag_moves import TagMoves
from core.service.tag_policies import TagPolicies
from core.service.workflow import WorkflowService
from core.service.workflow_commits import DEFAULT_COMPACTION_BOUND, WorkflowCommits
from core.service.workflow_moves import WorkflowMoves
from core.storage.blob_cache import DEFAULT_CACHE_MAX_BYTES, BlobCache, CachedBlobStore
from core.storage.blob_url import parse_blob_root
from core.storage.blobs import BlobStore
from core.storage.blobstore import FolderBlobStore
from core.storage.db import DEFAULT_BUSY_TIMEOUT, DEFAULT_LINGER, Database
from core.storage.schema import ensure_schema
from core.storage.uow import UnitOfWorkFactory

DEFAULT_DATABASE_URL = "duckdb:///.orchestrator/catalog.duckdb"
DEFAULT_BLOB_ROOT = ".orchestrator/blobs"


@dataclass(frozen=True)
class UseCases:
    """The services, composed over one unit-of-work factory and blob store."""

    cas: CasService
    artifacts: ArtifactService
    tags: TagService
    workflows: WorkflowService
    runs: RunService
    assets: AssetService
    refs: RefService
    maintenance: MaintenanceService
    lineage: LineageQueries


@dataclass(frozen=True)
class Services(UseCases):
    """The catalog's services; close it (or use it as a context manager) when done."""

    database: Database
    blob_root: Path | str
    """The blob folder (a ``Path``) or the object store URL (``s3://bucket/prefix``)."""

    def local_files(self) -> list[Path]:
        """The files and folders on this machine that are the catalog: a DuckDB file and
        a blob folder (none for Postgres and an object store)."""
        files = [self.blob_root] if isinstance(self.blob_root, Path) else []
        if self.database.dialect == "duckdb":
            files.insert(0, Path(str(self.database.url.database)))
        return files

    def close(self) -> None:
        self.database.dispose()

    def __enter__(self) -> "Services":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def connect(
    database_url: str | None = None,
    blob_root: str | os.PathLike[str] | None = None,
    *,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
    linger: float = DEFAULT_LINGER,
    compaction_bound: int = DEFAULT_COMPACTION_BOUND,
    create: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    cache_max_bytes: int | None = None,
) -> Services:
    """Open the catalog, creating its schema on first use (with ``create=False``, a
    catalog that does not exist yet is a ``NotFoundError`` and nothing is created).

    Defaults: ``$ORCHESTRATOR_DATABASE_URL`` else ``duckdb:///.orchestrator/catalog.duckdb``,
    and ``$ORCHESTRATOR_BLOB_ROOT`` else ``.orchestrator/blobs``. A blob root is a folder
    or an object store URL (``s3://bucket/prefix``, ``gs://...``, ``az://container/...``;
    credentials from the cloud's standard environment). On DuckDB, ``busy_timeout``
    bounds the wait for a file other processes hold, and an idle process keeps its
    connection for ``linger`` seconds unless another process asks for the file first.
    With an object store, ``cache_dir`` (default: ``$ORCHESTRATOR_CACHE_DIR``, else none)
    keeps verified copies of the blobs read, at most ``cache_max_bytes`` (default:
    ``$ORCHESTRATOR_CACHE_MAX_BYTES``, else 10 GiB); a blob folder needs no cache.
    """
    database = Database(
        database_url or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL,
        busy_timeout=busy_timeout,
        linger=linger,
        create=create,
    )
    try:
        ensure_schema(database, create=create)
        blobs, shown = open_blobs(blob_root or os.environ.get(BLOB_ROOT_ENV) or DEFAULT_BLOB_ROOT)
        reads = cached_reads(blobs, shown, cache_dir, cache_max_bytes)
    except BaseException:
        database.dispose()
        raise
    uses = compose(
        UnitOfWorkFactory(database, UnitOfWork),
        blobs,
        compaction_bound=compaction_bound,
        reads=reads,
    )
    return Services(**vars(uses), database=database, blob_root=shown)


def open_blobs(root: str | os.PathLike[str]) -> tuple[BlobStore, Path | str]:
    """The blob store ``root`` names (a folder, or an object store URL) and how it is shown:
    the folder's resolved path, or the URL."""
    location = parse_blob_root(root)
    if isinstance(location, Path):
        folder = FolderBlobStore(location)
        return folder, folder.root
    from core.storage.object_store import ObjectBlobStore  # obstore loads only when used

    return ObjectBlobStore(location), str(location)


def cached_reads(
    blobs: BlobStore,
    shown: Path | str,
    cache_dir: str | os.PathLike[str] | None,
    cache_max_bytes: int | None,
) -> BlobStore:
    """``blobs`` with a read cache in ``cache_dir`` (else ``$ORCHESTRATOR_CACHE_DIR``) if
    one is set and ``blobs`` is an object store (``shown`` is its URL), else ``blobs``."""
    folder = cache_dir or os.environ.get(CACHE_DIR_ENV)
    if not folder or isinstance(shown, Path):
        return blobs
    return CachedBlobStore(blobs, BlobCache(folder, cache_size(cache_max_bytes)))


def cache_size(max_bytes: int | None) -> int:
    """``max_bytes``, else ``$ORCHESTRATOR_CACHE_MAX_BYTES``, else the default; a value that
    is no positive whole number of bytes is a ``ValidationError`` naming it."""
    if max_bytes is not None:
        return max_bytes
    text = os.environ.get(CACHE_MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_CACHE_MAX_BYTES
    if not text.isdigit() or int(text) <= 0:
        raise ValidationError(
            f"invalid {CACHE_MAX_BYTES_ENV} {text!r}: expected a positive number of bytes"
        )
    return int(text)


def compose(
    uow: UnitOfWorkFactory[UnitOfWork],
    blobs: BlobStore,
    *,
    compaction_bound: int,
    reads: BlobStore | None = None,
) -> UseCases:
    """The services and the parts they share, each concern once. Reads of blob bytes go
    through ``reads`` (``blobs`` behind a cache) if given; ``gc`` and ``verify`` always
    see ``blobs`` itself."""
    cas = CasService(uow, blobs if reads is None else reads)
    artifacts = ArtifactService.compose(uow, cas)
    found, creation = artifacts.resolution, artifacts.creation
    policies = TagPolicies(uow)
    moves = TagMoves(found, policies)
    commits = WorkflowCommits(uow, found, creation, cas, compaction_bound=compaction_bound)
    read_model = WorkflowMoves(uow, found)
    refs = RefService(uow, found)
    merges = Merges(uow, found, creation, refs, compaction_bound=compaction_bound)
    queue = PublishQueue(uow, found, creation, merges)
    runs = RunService(uow, found, creation, RunPublishing(uow, merges, queue))
    lineage = RunLineage(uow, runs)
    tags = TagService(uow, found, moves, policies)
    return UseCases(
        cas=cas,
        artifacts=artifacts,
        tags=tags,
        workflows=WorkflowService(commits, read_model, merges),
        runs=runs,
        assets=AssetService(
            AssetOutputs(uow, cas, commits, runs, lineage),
            AssetInputs(uow, cas, found, read_model, runs, lineage, refs),
            lineage,
            runs,
        ),
        refs=refs,
        maintenance=MaintenanceService(uow, blobs, found, tags),
        lineage=LineageQueries(uow, found, refs),
    )
