"""Fixtures of the Dagster tests: the plugin's resources on each backend, an instance."""

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from orchestrator_dagster import OrchestratorResource, VersionedIOManager


@pytest.fixture
def resources(database_url: str, blob_root: Path) -> dict[str, object]:
    """``orchestrator`` and a ``VersionedIOManager`` on ``main``, as a job binds them."""
    orchestrator = OrchestratorResource(database_url=database_url, blob_root=str(blob_root))
    return {
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    }


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance
