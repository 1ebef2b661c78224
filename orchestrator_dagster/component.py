"""The plugin as a Dagster component: a ``defs.yaml`` that sets up the catalog."""

from collections.abc import Callable, Sequence
from typing import Any, Literal

import dagster as dg
from pydantic import ConfigDict, Field, field_validator

import core
from core.client import check_server_url
from core.identifiers import check_publish, check_tag_name
from core.settings import check_settings
from orchestrator_dagster.io_manager import VersionedIOManager
from orchestrator_dagster.resource import OrchestratorResource
from orchestrator_dagster.sensors import build_run_snapshot_sensor, tag_move_sensor

SensorStatus = Literal["running", "stopped"]
_STATUSES = {
    "running": dg.DefaultSensorStatus.RUNNING,
    "stopped": dg.DefaultSensorStatus.STOPPED,
}


def _refuse_invalid(check: Callable[[Any], object], value: object) -> None:
    """Run a core check on ``value``: its ``ValidationError`` becomes the ``ValueError``
    pydantic reports under the attribute's name (``dg check defs`` prints it)."""
    try:
        check(value)
    except core.ValidationError as exc:
        raise ValueError(str(exc)) from exc


class TagMoveSensor(dg.Resolvable, dg.Model):
    """A ``tag_move_sensor``: one run of ``target`` per move of ``tag``."""

    target: str = Field(
        description="The assets each run materialises, in Dagster's selection syntax "
        "(as `dg launch --assets` takes it): `publish_report`, `key:report+`, `group:sales`."
    )
    tag: str | None = Field(
        default=None, description="The tag whose moves start runs (default: the component's)."
    )
    asset_keys: Sequence[str] | None = Field(
        default=None,
        description="Only moves that changed one of these assets (`sales/orders` form) "
        "start a run; default: every move.",
    )
    name: str | None = Field(
        default=None, description="The sensor's name (default: `<tag>_tag_move_sensor`)."
    )
    minimum_interval_seconds: int = Field(default=30, ge=1)
    default_status: SensorStatus = Field(
        default="stopped", description="Whether the sensor starts running (`running`) or not."
    )

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, tag: str | None) -> str | None:
        if tag is not None:
            _refuse_invalid(check_tag_name, tag)
        return tag


class RunSnapshotSensor(dg.Resolvable, dg.Model):
    """The ``run_snapshot_sensor``: finished runs recorded, ``publish: run`` runs published."""

    name: str = "run_snapshot_sensor"
    minimum_interval_seconds: int = Field(default=30, ge=1)
    default_status: SensorStatus = "running"


class CatalogSensors(dg.Resolvable, dg.Model):
    """Which of the plugin's sensors the component adds."""

    run_snapshot: RunSnapshotSensor | None = Field(
        default_factory=RunSnapshotSensor,
        description="Added unless set to null: it records each run's end in the catalog and "
        "publishes `publish: run` runs.",
    )
    tag_moves: Sequence[TagMoveSensor] = Field(
        default=(), description="One `tag_move_sensor` per entry."
    )


class OrchestratorComponent(dg.Component, dg.Resolvable, dg.Model):
    """The versioned DAG catalog for the assets of a Dagster project.

    It provides the ``orchestrator`` resource, a ``VersionedIOManager`` as the
    ``io_manager`` of every asset of the code location that does not choose another, and
    the plugin's sensors. Relative paths (a DuckDB file, a blob folder) are taken under
    the project's root; settings left out come from ``ORCHESTRATOR_DATABASE_URL`` and
    ``ORCHESTRATOR_BLOB_ROOT`` when the catalog is opened, else the defaults.

    Examples:
        .. code-block:: yaml

            # src/my_project/defs/catalog/defs.yaml
            type: orchestrator_dagster.OrchestratorComponent
            attributes:
              database_url: duckdb:///.orchestrator/catalog.duckdb
              blob_root: .orchestrator/blobs
              tag: main
              publish: run
              sensors:
                tag_moves:
                  - target: publish_report
                    asset_keys: [sales_report]
    """

    model_config = ConfigDict(hide_input_in_errors=True)  # a database url may hold a password

    database_url: str | None = Field(
        default=None,
        description="The catalog: duckdb:///<file> or postgresql+psycopg://user@host/db "
        "(default: $ORCHESTRATOR_DATABASE_URL, else duckdb:///.orchestrator/catalog.duckdb).",
    )
    blob_root: str | None = Field(
        default=None,
        description="Where blobs live: a folder, or s3://, gs://, az:// bucket/prefix "
        "(default: $ORCHESTRATOR_BLOB_ROOT, else .orchestrator/blobs).",
    )
    cache_dir: str | None = Field(
        default=None,
        description="A local read cache of an object store's blobs, relative to the project "
        "(default: $ORCHESTRATOR_CACHE_DIR, else none).",
    )
    cache_max_bytes: int | None = Field(
        default=None,
        gt=0,
        description="The read cache's bound (default: $ORCHESTRATOR_CACHE_MAX_BYTES, else 10 GiB).",
    )
    server_url: str | None = Field(
        default=None,
        description="A catalog served with `orchestrator serve` that the steps talk to "
        "instead of opening the database (default: $ORCHESTRATOR_SERVER_URL, else none).",
    )
    tag: str = Field(default="main", description="The tag that materialisations move.")
    publish: Literal["output", "run"] = Field(
        default="output",
        description='"output": each materialisation moves the tag; "run": a run\'s outputs '
        "land on the tag together once the run and its checks pass.",
    )
    busy_timeout: float = Field(
        default=60.0, gt=0, description="Seconds to wait for a DuckDB catalog held by others."
    )
    sensors: CatalogSensors = Field(
        default_factory=CatalogSensors, description="The sensors to add."
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, url: str | None) -> str | None:
        _refuse_invalid(lambda value: check_settings(database_url=value), url)
        return url

    @field_validator("blob_root")
    @classmethod
    def _check_blob_root(cls, root: str | None) -> str | None:
        _refuse_invalid(lambda value: check_settings(blob_root=value), root)
        return root

    @field_validator("server_url")
    @classmethod
    def _check_server_url(cls, url: str | None) -> str | None:
        if url is not None:
            _refuse_invalid(check_server_url, url)
        return url

    @field_validator("tag")
    @classmethod
    def _check_tag(cls, tag: str) -> str:
        _refuse_invalid(check_tag_name, tag)
        return tag

    @field_validator("publish", mode="before")
    @classmethod
    def _check_publish(cls, publish: object) -> object:
        _refuse_invalid(check_publish, publish)
        return publish

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        settings = check_settings(
            self.database_url, self.blob_root, base=context.project_root, cache_dir=self.cache_dir
        )
        orchestrator = OrchestratorResource(
            database_url=settings.database_url,
            blob_root=settings.blob_root,
            busy_timeout=self.busy_timeout,
            cache_dir=settings.cache_dir,
            cache_max_bytes=self.cache_max_bytes,
            server_url=self.server_url,
        )
        return dg.Definitions(
            resources={
                "orchestrator": orchestrator,
                "io_manager": VersionedIOManager(
                    orchestrator=orchestrator, tag=self.tag, publish=self.publish
                ),
            },
            sensors=self._sensors(),
        )

    def _sensors(self) -> list[dg.SensorDefinition]:
        sensors = [
            tag_move_sensor(
                sensor.tag or self.tag,
                sensor.target,
                name=sensor.name,
                asset_keys=None
                if sensor.asset_keys is None
                else [dg.AssetKey.from_user_string(key) for key in sensor.asset_keys],
                minimum_interval_seconds=sensor.minimum_interval_seconds,
                default_status=_STATUSES[sensor.default_status],
            )
            for sensor in self.sensors.tag_moves
        ]
        snapshot = self.sensors.run_snapshot
        if snapshot is not None:
            sensors.append(
                build_run_snapshot_sensor(
                    name=snapshot.name,
                    minimum_interval_seconds=snapshot.minimum_interval_seconds,
                    default_status=_STATUSES[snapshot.default_status],
                )
            )
        return sensors
