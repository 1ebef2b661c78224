"""The DuckDB catalog's own disk fills: every write ends in ``StorageUnavailableError``
(CLI exit 5 with one line, HTTP 503 with ``Retry-After``), nothing committed is lost,
and the same process writes again once there is space."""

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import core
from core.routes import create_app
from tests.faults.conftest import Tmpfs
from tests.support.helpers import DAG, run_orchestrator

pytestmark = pytest.mark.faults


@dataclass
class FullCatalog:
    """A DuckDB catalog on a tmpfs that a filler file has filled up."""

    catalog: core.Services
    database_url: str
    blob_root: Path
    filler: Path
    head: core.Tag

    def free(self) -> None:
        self.filler.unlink()


def _fill(path: Path) -> None:
    """Write zeros into ``path`` until the file system is full."""
    subprocess.run(["dd", "if=/dev/zero", f"of={path}", "bs=64k"], capture_output=True)


@pytest.fixture
def full_catalog(make_tmpfs: Callable[..., Tmpfs], tmp_path: Path) -> Iterator[FullCatalog]:
    tmpfs = make_tmpfs(size="8m")
    database_url = f"duckdb:///{tmpfs.path / 'catalog.duckdb'}"
    blob_root = tmp_path / "blobs"  # the blobs have room: only the catalog's disk is full
    with core.connect(database_url, blob_root) as catalog:
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("sales", DAG))
        head = catalog.tags.get_tag("main")
        catalog.database.dispose()  # a checkpoint: the file holds everything so far
        filler = tmpfs.path / "filler"
        _fill(filler)
        yield FullCatalog(catalog, database_url, blob_root, filler, head)


def _patch(name: str) -> list[dict[str, object]]:
    return [{"op": "add", "path": f"/nodes/{name}", "value": {"deps": []}}]


def test_a_write_to_a_full_catalog_is_a_storage_error_and_works_once_freed(
    full_catalog: FullCatalog,
) -> None:
    catalog = full_catalog.catalog
    refused = 0
    for attempt in range(3):  # DuckDB may take the first in the room its WAL still has
        try:
            catalog.workflows.patch_workflow("main", _patch(f"n{attempt}"))
        except core.StorageUnavailableError as error:
            assert "catalog.duckdb" in str(error) and "No space left" in str(error)
            refused += 1
    assert refused >= 2, "a full disk under the catalog refused fewer than two writes"
    full_catalog.free()
    moved = catalog.workflows.patch_workflow("main", _patch("after"))
    document = catalog.workflows.get_workflow_by_tag("main")
    assert "after" in document["nodes"] and set(DAG["nodes"]) <= set(document["nodes"])
    history = catalog.tags.get_history("main")
    assert history[-1].revision == moved.revision == len(history)


def test_the_cli_exits_5_with_one_line_on_a_full_catalog(full_catalog: FullCatalog) -> None:
    full_catalog.catalog.database.dispose()
    results = [
        run_orchestrator(
            full_catalog.database_url, full_catalog.blob_root, "tag", "create", f"t{i}", "main"
        )
        for i in range(3)
    ]
    refused = [result for result in results if result.returncode != 0]
    assert len(refused) >= 2, [result.stderr for result in results]
    for result in refused:
        assert result.returncode == 5, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "No space left" in lines[0], result.stderr
    full_catalog.free()
    tags = run_orchestrator(full_catalog.database_url, full_catalog.blob_root, "tags", "--json")
    assert tags.returncode == 0, tags.stderr
    assert f'"{full_catalog.head.target_id}"' in tags.stdout


def test_http_answers_503_with_retry_after_on_a_full_catalog(full_catalog: FullCatalog) -> None:
    with TestClient(create_app(full_catalog.catalog), raise_server_exceptions=False) as client:
        answers = [
            client.patch("/workflows/main", json=_patch(f"h{attempt}")) for attempt in range(3)
        ]
        refused = [answer for answer in answers if answer.status_code != 200]
        assert len(refused) >= 2, [answer.status_code for answer in answers]
        for answer in refused:
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"]
            assert answer.json()["error"]["type"] == "unavailable"
        full_catalog.free()
        assert client.patch("/workflows/main", json=_patch("after")).status_code == 200
