"""Ctrl-C at any moment of a command, its first half second (the imports) included, ends
it quietly: status 130 (or the command's own, had it finished), never a traceback.

Before the first line of this package runs, the signal meets Python itself: the
interpreter's start-up (``site``) or the console-script wrapper pip wrote. What Python
prints there is its own and no program can change it, so a traceback with no frame in
this package's code counts as interrupted before the command began."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import core
from tests.support.helpers import DAG

pytestmark = pytest.mark.faults

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")
DELAYS = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0)
"""Seconds after the start at which the interrupt comes: while Python and the catalog's
modules load, while options are parsed, while the command runs."""
OUR_CODE = ("orchestrator_cli.py", "/core/", "/orchestrator_dagster/")
"""Paths in a traceback that show this package had started."""


def test_ctrl_c_at_any_moment_ends_quietly(tmp_path: Path) -> None:
    database_url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    blob_root = str(tmp_path / "blobs")
    with core.connect(database_url, blob_root) as catalog:
        catalog.workflows.create_workflow(core.CreateWorkflowRequest("sales", DAG))
    command = [ORCHESTRATOR, "--database-url", database_url, "--blob-root", blob_root]
    statuses = []
    for delay in DELAYS:
        process = subprocess.Popen(
            [*command, "verify"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_interruptible,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
        if _before_the_command(stderr):
            continue
        assert "Traceback" not in stderr, f"interrupted after {delay} s:\n{stderr}"
        # 130: interrupted; 0: verify ended first; -2: before Python took the signal
        assert process.returncode in (130, 0, -signal.SIGINT), (delay, stderr)
        statuses.append(process.returncode)
    assert 130 in statuses, f"no run was interrupted by the command itself: {statuses}"


def _before_the_command(stderr: str) -> bool:
    """Whether Python's own start-up took the signal, before any of this package ran."""
    return "Traceback" in stderr and not any(frame in stderr for frame in OUR_CODE)


def _interruptible() -> None:
    """Ctrl-C's default in the command, even where the suite was started in the background
    (a shell's background job ignores SIGINT, its children too, and Python then keeps it
    ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
