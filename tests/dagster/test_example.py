"""The example code location loads, and the README's main command runs it end to end."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import core
from core.local_server import RUNTIME_DIR_ENV

ROOT = Path(__file__).parent.parent.parent
DAGSTER = Path(sys.executable).parent / "dagster"


def test_workspace_validates(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Validation successful" in result.stdout + result.stderr


@pytest.mark.slow
def test_main_command_materialises_the_example(tmp_path: Path) -> None:
    shutil.copy(ROOT / "definitions.py", tmp_path)
    # a user's environment: no catalog settings, the local server on (its socket in this
    # session's folder, so that the session's end stops it)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ORCHESTRATOR_", "DAGSTER_"))
    }
    env[RUNTIME_DIR_ENV] = os.environ[RUNTIME_DIR_ENV]

    def run_main() -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "definitions.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    result = run_main()
    assert "main holds 8 nodes" in result.stdout
    assert "fx_pipeline: published on main" in result.stdout
    with core.connect(
        f"duckdb:///{tmp_path / '.orchestrator/catalog.duckdb'}", tmp_path / ".orchestrator/blobs"
    ) as catalog:
        history = catalog.tags.get_history("main")
        # 3 partitions + 4 assets + the published report, then the fx run in one move
        assert len(history) == 9
        fx_run = history[-1].run_id
        assert fx_run is not None and catalog.runs.get_run(fx_run).publish == "run"
        assert set(catalog.artifacts.resolve(history[-1].to_target_id)["nodes"]) >= {
            "fx_rates",
            "fx_table",
        }
        document = catalog.workflows.get_workflow_by_tag("main")
        assert document["nodes"]["fx_table"]["media_type"] == "application/vnd.apache.parquet"
        assert set(document["nodes"]["raw_orders"]["partitions"]) == {"amer", "apac", "emea"}
        assert document["nodes"]["clean_orders"]["code_version"] == "2"
        runs = {move.run_id for move in history}
        assert all(catalog.runs.get_run(run_id).status == "success" for run_id in runs)
    again = run_main()
    moves = [line for line in again.stdout.splitlines() if re.match(r"\s+r\d+ ", line)]
    assert len(moves) == 9  # same content: nothing moved
    assert "fx_pipeline: unchanged on main" in again.stdout
