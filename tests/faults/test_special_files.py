"""A catalog path that is not a regular file (a named pipe, a folder, a socket, a device,
a link to one) ends every command at once with one line naming it: nothing blocks."""

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

import core
from tests.support.helpers import DAG, run_orchestrator

pytestmark = pytest.mark.faults

JSON = "application/json"


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_folder(path: Path) -> None:
    path.mkdir()


def make_socket(path: Path) -> None:
    """A Unix socket file at ``path`` (bound where the name is short enough, then moved)."""
    folder = tempfile.mkdtemp(dir="/tmp")
    bound = socket.socket(socket.AF_UNIX)
    try:
        bound.bind(f"{folder}/s")
        os.rename(f"{folder}/s", path)
    finally:
        bound.close()
        shutil.rmtree(folder, ignore_errors=True)


def make_zero_device(path: Path) -> None:
    """A character device node of its own: /dev/zero's (reads never end)."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError as exc:
        pytest.skip(f"making a device node needs root: {exc}")


def link_to_dev_null(path: Path) -> None:
    path.symlink_to("/dev/null")


def link_to_fifo(path: Path) -> None:
    target = path.with_name(path.name + ".target")
    os.mkfifo(target)
    path.symlink_to(target)


KINDS: dict[str, tuple[Callable[[Path], None], str]] = {
    "fifo": (make_fifo, "a named pipe"),
    "folder": (make_folder, "a folder"),
    "socket": (make_socket, "a socket"),
    "device": (make_zero_device, "a character device"),
    "link-to-dev-null": (link_to_dev_null, "a character device"),
    "link-to-fifo": (link_to_fifo, "a named pipe"),
}
CATALOG_FILES = {
    "catalog": "catalog.duckdb",
    "lock": "catalog.duckdb.lock",
    "queue": "catalog.duckdb.queue",
    "journal": "catalog.duckdb.journal",
    "wal": "catalog.duckdb.wal",
}


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A DuckDB catalog with a version on ``main`` and a value, closed."""
    database_url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    with core.connect(database_url, tmp_path / "blobs") as catalog:
        catalog.assets.commit_output("run-1", "main", "a", b"1", media_type=JSON)
    return database_url


def replace(path: Path, kind: str) -> None:
    """Put a file of ``kind`` where ``path`` is (or would be)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
    KINDS[kind][0](path)


def assert_refused(
    result: "subprocess.CompletedProcess[str]", path: Path, what: str | None = None
) -> None:
    """Exit 5 with one line on stderr that names ``path`` (and says ``what`` it is)."""
    assert result.returncode == 5, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert str(path) in lines[0], lines[0]
    if what is not None:
        assert what in lines[0], lines[0]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", CATALOG_FILES)
def test_a_catalog_file_that_is_not_a_regular_file_is_refused_at_once(
    url: str, tmp_path: Path, name: str, kind: str
) -> None:
    path = tmp_path / CATALOG_FILES[name]
    replace(path, kind)
    result = run_orchestrator(url, tmp_path / "blobs", "tags")
    assert_refused(result, path, KINDS[kind][1])


COMMANDS = {
    "tags": ["tags"],
    "history": ["history", "main"],
    "workflow-create": ["workflow", "create", "{dag}", "--name", "sales"],
    "gc": ["gc", "--grace", "0s"],
    "verify": ["verify"],
    "serve": ["serve", "--port", "0"],
}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", ["catalog", "journal"])
def test_every_command_refuses_a_named_pipe_for_a_catalog_file(
    url: str, tmp_path: Path, name: str, command: str
) -> None:
    dag = tmp_path / "dag.json"
    dag.write_text(json.dumps(DAG))
    path = tmp_path / CATALOG_FILES[name]
    replace(path, "fifo")
    args = [arg.format(dag=dag) for arg in COMMANDS[command]]
    result = run_orchestrator(url, tmp_path / "blobs", *args)
    assert_refused(result, path, "a named pipe")
    assert stat.S_ISFIFO(path.stat().st_mode)  # left as it was


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "link-to-dev-null", "link-to-fifo"])
@pytest.mark.parametrize("where", ["root", "tmp"])
def test_a_blob_folder_that_is_not_a_folder_is_refused_at_once(
    url: str, tmp_path: Path, where: str, kind: str
) -> None:
    root = tmp_path / "blobs"
    blocked = root if where == "root" else root / "tmp"
    replace(blocked, kind)
    result = run_orchestrator(url, root, "verify")
    assert result.returncode == 5, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "blob folder" in lines[0], lines
    assert str(blocked) in lines[0] or str(blocked.resolve()) in lines[0], lines[0]


@pytest.mark.parametrize("command", [["verify"], ["cat", "a"]])
@pytest.mark.parametrize("kind", KINDS)
def test_a_blob_file_that_is_not_a_regular_file_is_refused_at_once(
    url: str, tmp_path: Path, kind: str, command: list[str]
) -> None:
    blob_root = tmp_path / "blobs"
    with core.connect(url, blob_root) as catalog:
        cas_id = catalog.cas.compute_hash(b"1")
    path = blob_root / "sha256" / cas_id[7:9] / cas_id[9:11] / cas_id[7:]
    assert path.is_file()
    replace(path, kind)
    result = run_orchestrator(url, blob_root, *command)
    assert_refused(result, path, KINDS[kind][1])
