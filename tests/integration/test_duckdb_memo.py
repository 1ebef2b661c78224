"""On DuckDB a process remembers the tags it read or moved while it holds the file, and
forgets them when it gives the file up or a transaction rolls back."""

import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import core
from tests.support.helpers import DAG, statements_sent

PATCH_IN_ANOTHER_PROCESS = """
import sys, core
with core.connect(sys.argv[1], sys.argv[2]) as catalog:
    catalog.workflows.patch_workflow(
        "main", [{"op": "add", "path": "/nodes/other", "value": {"deps": []}}]
    )
"""


@pytest.fixture
def duckdb_catalog(tmp_path: Path) -> Iterator[core.Services]:
    # a long linger: the catalog keeps the file unless another process queues for it
    url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    with core.connect(url, tmp_path / "blobs", linger=60) as catalog:
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("sales", DAG))
        yield catalog


def add_node(name: str) -> list[dict[str, object]]:
    return [{"op": "add", "path": f"/nodes/{name}", "value": {"deps": ["raw"]}}]


def test_moving_a_tag_again_does_not_read_it_back(duckdb_catalog: core.Services) -> None:
    sent = statements_sent(duckdb_catalog)
    for name in ("a", "b", "c"):
        duckdb_catalog.workflows.patch_workflow("main", add_node(name))
    assert [s for s in sent if "FROM tags" in s] == []
    history = duckdb_catalog.tags.get_history("main")
    assert [move.revision for move in history] == [1, 2, 3, 4]
    for before, after in itertools.pairwise(history):
        assert after.from_target_id == before.to_target_id
    nodes = duckdb_catalog.workflows.get_workflow_by_tag("main")["nodes"]
    assert {"a", "b", "c"} <= nodes.keys()


def test_a_move_by_another_process_is_seen(duckdb_catalog: core.Services) -> None:
    duckdb_catalog.workflows.patch_workflow("main", add_node("a"))  # remembered here
    other = subprocess.run(
        [
            sys.executable,
            "-c",
            PATCH_IN_ANOTHER_PROCESS,
            str(duckdb_catalog.database.url),
            str(duckdb_catalog.blob_root),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent.parent,
    )
    assert other.returncode == 0, other.stderr
    sent = statements_sent(duckdb_catalog)
    duckdb_catalog.workflows.patch_workflow("main", add_node("b"))
    assert len([s for s in sent if s.startswith("UPDATE tags")]) == 1  # no stale first try
    history = duckdb_catalog.tags.get_history("main")
    assert [move.revision for move in history] == [1, 2, 3, 4]
    assert history[3].from_target_id == history[2].to_target_id  # built on the other's move
    nodes = duckdb_catalog.workflows.get_workflow_by_tag("main")["nodes"]
    assert {"a", "other", "b"} <= nodes.keys()


def test_a_rolled_back_move_is_forgotten(duckdb_catalog: core.Services) -> None:
    duckdb_catalog.workflows.patch_workflow("main", add_node("a"))
    with pytest.raises(RuntimeError), duckdb_catalog.database.transaction():
        duckdb_catalog.workflows.patch_workflow("main", add_node("undone"))
        raise RuntimeError("the caller's transaction fails after the move")
    sent = statements_sent(duckdb_catalog)
    duckdb_catalog.workflows.patch_workflow("main", add_node("b"))
    assert len([s for s in sent if s.startswith("UPDATE tags")]) == 1  # no lost first try
    history = duckdb_catalog.tags.get_history("main")
    assert [move.revision for move in history] == [1, 2, 3]
    nodes = duckdb_catalog.workflows.get_workflow_by_tag("main")["nodes"]
    assert "undone" not in nodes and {"a", "b"} <= nodes.keys()


def test_a_deleted_and_recreated_tag_reads_as_it_is(duckdb_catalog: core.Services) -> None:
    tags = duckdb_catalog.tags
    first = tags.get_tag("main")  # remembered
    duckdb_catalog.workflows.patch_workflow("main", add_node("a"))
    second = tags.get_tag("main").target_id
    tags.delete_tag("main")
    with pytest.raises(core.NotFoundError):
        tags.get_tag("main")
    recreated = tags.create_or_move_tag("main", first.target_id)
    assert (recreated.target_id, recreated.revision) == (first.target_id, 4)
    assert tags.get_tag("main") == recreated
    assert tags.create_or_move_tag("main", second).revision == 5
    rolled_back = tags.rollback("main")
    assert (rolled_back.target_id, rolled_back.revision) == (first.target_id, 6)
    assert tags.get_tag("main") == rolled_back
    history = [move.to_target_id for move in tags.get_history("main")]
    assert history[1:] == [second, None, first.target_id, second, first.target_id]


def test_two_catalogs_on_one_file_in_one_process(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    with (
        core.connect(url, tmp_path / "blobs", linger=60) as one,
        core.connect(url, tmp_path / "blobs", linger=60) as two,
    ):
        one.workflows.create_workflow(core.CreateWorkflowRequest("sales", DAG))
        for name in ("a", "b", "c", "d"):
            catalog = one if name in ("a", "c") else two
            catalog.workflows.patch_workflow("main", add_node(name))
        assert one.tags.get_tag("main") == two.tags.get_tag("main")
        assert [m.revision for m in one.tags.get_history("main")] == [1, 2, 3, 4, 5]
        nodes = two.workflows.get_workflow_by_tag("main")["nodes"]
        assert {"a", "b", "c", "d"} <= nodes.keys()
