"""Dagster plugin for the versioned DAG catalog: resource, IO manager, sensors and the
component that sets them up from a ``defs.yaml``."""

from orchestrator_dagster import codecs as codecs
from orchestrator_dagster.component import OrchestratorComponent as OrchestratorComponent
from orchestrator_dagster.io_manager import VersionedIOManager as VersionedIOManager
from orchestrator_dagster.publishing import publish_run as publish_run
from orchestrator_dagster.resource import OrchestratorResource as OrchestratorResource
from orchestrator_dagster.sensors import run_snapshot_sensor as run_snapshot_sensor
from orchestrator_dagster.sensors import tag_move_sensor as tag_move_sensor

__all__ = [
    "OrchestratorComponent",
    "OrchestratorResource",
    "VersionedIOManager",
    "codecs",
    "publish_run",
    "run_snapshot_sensor",
    "tag_move_sensor",
]
