"""The unit tier: the services' rules over an in-memory unit of work (no database)."""

from pathlib import Path

import pytest

from tests.support.fakes import FakeCatalog, fake_services


@pytest.fixture
def fake(tmp_path: Path) -> FakeCatalog:
    return fake_services(tmp_path / "blobs", compaction_bound=3)
