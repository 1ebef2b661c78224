"""The Dagster resource that hands out the catalog's services."""

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Optional, cast

import dagster as dg
from pydantic import Field, PrivateAttr

import core
from core.client import SERVER_URL_ENV, ServedSteps, ServerUnreachableError
from core.local_server import LocalSteps, answering, local_steps

if TYPE_CHECKING:
    from core.bootstrap import Services
    from core.step_catalog import StepCatalog


class OrchestratorResource(dg.ConfigurableResource["OrchestratorResource"]):
    """Connects a Dagster code location to the versioned DAG catalog.

    The catalog is opened once per step process in ``setup_for_execution`` and closed in
    ``teardown_after_execution``. DuckDB connections are taken per transaction and never
    held while idle, so sensors in a long-running process do not lock the file. With a
    ``server_url`` the steps talk to a served catalog instead (``steps``), and the
    database is opened only if ``catalog`` is asked for.

    Examples:
        .. code-block:: python

            import dagster as dg
            from orchestrator_dagster import OrchestratorResource, VersionedIOManager

            orchestrator = OrchestratorResource(
                database_url=dg.EnvVar("ORCHESTRATOR_DATABASE_URL"),
                blob_root=".orchestrator/blobs",
            )

            @dg.asset
            def orders() -> list[dict]:
                return [{"id": 1, "amount": 12.5}]

            defs = dg.Definitions(
                assets=[orders],
                resources={
                    "orchestrator": orchestrator,
                    "io_manager": VersionedIOManager(orchestrator=orchestrator),
                },
            )
    """

    database_url: Optional[str] = Field(  # noqa: UP045 (Dagster reads the annotation)
        default=None,
        description=(
            "SQLAlchemy URL of the catalog: duckdb:///path/to/catalog.duckdb or "
            "postgresql+psycopg://user@host/db. Default: $ORCHESTRATOR_DATABASE_URL, else "
            "duckdb:///.orchestrator/catalog.duckdb."
        ),
    )
    blob_root: Optional[str] = Field(  # noqa: UP045
        default=None,
        description=(
            "Where the content-addressed blobs live: a local folder, or an object store URL "
            "(s3://bucket/prefix, any S3-compatible server through AWS_ENDPOINT_URL; "
            "gs://bucket/prefix; az://container/prefix) with credentials from the cloud's "
            "standard environment. Steps on many machines need an object store (and "
            "Postgres). Default: $ORCHESTRATOR_BLOB_ROOT, else .orchestrator/blobs."
        ),
    )
    busy_timeout: float = Field(
        default=60.0,
        description="Seconds to wait for a DuckDB catalog locked by other processes.",
    )
    cache_dir: Optional[str] = Field(  # noqa: UP045
        default=None,
        description=(
            "A local folder caching the blobs read from an object store (verified copies; "
            "content never changes, so never stale). Default: $ORCHESTRATOR_CACHE_DIR, else "
            "no cache."
        ),
    )
    cache_max_bytes: Optional[int] = Field(  # noqa: UP045
        default=None,
        gt=0,
        description=(
            "The cache's bound: least recently used copies are evicted beyond it. Default: "
            "$ORCHESTRATOR_CACHE_MAX_BYTES, else 10 GiB."
        ),
    )

    server_url: Optional[str] = Field(  # noqa: UP045
        default=None,
        description=(
            "A catalog served with `orchestrator serve` (http://host:port) that the IO "
            "manager's steps talk to, instead of opening the database in every step "
            "process: a step then loads no database driver and holds no file or "
            "connection. Runs' ends are recorded there too (run_snapshot_sensor, "
            "publish_run); otherwise sensors and scripts open the catalog from "
            "database_url and blob_root, which must name the catalog the server serves. "
            "Default: $ORCHESTRATOR_SERVER_URL, else none."
        ),
    )

    local_server: Optional[bool] = Field(  # noqa: UP045
        default=None,
        description=(
            "Whether the step processes of a multiprocess run share a local server of "
            "the catalog (`orchestrator serve` on a unix socket, started by the first step "
            "that finds none, stopped after $ORCHESTRATOR_LOCAL_SERVER_IDLE seconds "
            "without a request, default 600) instead of each opening the database. "
            "Ignored with a server_url. Default: $ORCHESTRATOR_LOCAL_SERVER (off, 0, "
            "false or no turn it off), else on."
        ),
    )

    _catalog: "Services | None" = PrivateAttr(default=None)
    _served: "ServedSteps | LocalSteps | None" = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        server_url = self._server_url()
        if server_url:
            self._served = ServedSteps(server_url)
            return
        self._served = local_steps(self.local_server, self._settings(), lambda: self.catalog.assets)
        if self._served is None:
            self._catalog = self._connect()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._served is not None:
            self._served.close()
            self._served = None
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None

    @contextlib.contextmanager
    def opened(self) -> Iterator["Services"]:
        """The catalog for a block: this resource's when it is set up (in a run or a
        sensor), else one opened from its settings and closed after (in scripts)."""
        if self._catalog is not None:
            yield self._catalog
            return
        with self._connect() as catalog:
            yield catalog

    def end_run(
        self,
        run_id: str,
        status: str,
        *,
        finished_at: datetime | None = None,
        failed_checks: Sequence[str] = (),
    ) -> core.Run:
        """``RunService.end_run``, through the served catalog when ``server_url`` is set
        or, in a script, a local server of this catalog answers (it holds the database,
        which this process then need not open); else on the catalog (opened for the call
        when this resource is not set up)."""
        if self._catalog is None:
            url = self._server_url() or answering(self.local_server, self._settings())
            if url:
                served = ServedSteps(url)
                try:
                    return served.end_run(
                        run_id, status, finished_at=finished_at, failed_checks=failed_checks
                    )
                except ServerUnreachableError:
                    pass  # it stopped before the request went out: open the catalog
                finally:
                    served.close()
        with self.opened() as catalog:
            return catalog.runs.end_run(
                run_id, status, finished_at=finished_at, failed_checks=failed_checks
            )

    def _server_url(self) -> str | None:
        return self.server_url or os.environ.get(SERVER_URL_ENV)

    def _settings(self) -> tuple[str | None, str | None, str | None, int | None]:
        return (self.database_url, self.blob_root, self.cache_dir, self.cache_max_bytes)

    def _connect(self) -> "Services":
        return core.connect(
            self.database_url,
            self.blob_root,
            busy_timeout=self.busy_timeout,
            cache_dir=self.cache_dir,
            cache_max_bytes=self.cache_max_bytes,
        )

    @property
    def steps(self) -> "StepCatalog":
        """What the IO manager's steps ask of the catalog: the served catalog's when
        ``server_url`` is set or a local server answers, else the catalog's ``assets``
        service."""
        if self._served is not None:
            return cast("StepCatalog", self._served)
        return self.catalog.assets

    @property
    def catalog(self) -> "Services":
        """The catalog's services (``cas``, ``artifacts``, ``tags``, ``workflows``, ...);
        with a served catalog, opened on first use (a sensor's; a step's only if its local
        server went away)."""
        if self._catalog is None and self._served is not None:
            self._catalog = self._connect()
        if self._catalog is None:
            raise dg.DagsterInvariantViolationError(
                "OrchestratorResource is not set up: use it from a Dagster run, sensor or "
                "a build_*_context(...) block"
            )
        return self._catalog
