"""Two machines: two processes with their own working folders and no blob folder in
common share one catalog through Postgres and an S3 bucket (moto on loopback). One
materialises the upstream assets, the other the downstream asset, reading them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import core
from tests.support.blob_access import raw_blobs

ROOT = Path(__file__).parent.parent.parent


def machine(role: str, workdir: Path, database_url: str, blob_root: str) -> dict:
    workdir.mkdir()
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_BLOB_ROOT": blob_root,
        "PYTHONPATH": str(ROOT),  # the test's asset module; nothing else is shared
        "DAGSTER_HOME": str(workdir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.dagster.two_machines_defs", role],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["success"], done.stderr[-3000:]
    assert report["cwd"] == str(workdir)
    assert not (workdir / ".orchestrator").exists()  # no local blob folder, no local catalog
    return report


@pytest.mark.slow
def test_upstream_on_one_machine_downstream_on_another(
    postgres_schema_url: str, s3_blob_root: str, tmp_path: Path
) -> None:
    first = machine("upstream", tmp_path / "machine-a", postgres_schema_url, s3_blob_root)
    second = machine("downstream", tmp_path / "machine-b", postgres_schema_url, s3_blob_root)
    assert first["pid"] != second["pid"]

    with core.connect(postgres_schema_url, s3_blob_root) as catalog:
        nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
        assert set(nodes) == {"orders", "customers", "revenue_by_customer"}
        report = catalog.assets.read(
            catalog.assets.locate_input(None, "main", "revenue_by_customer")
        )
        value = json.loads(report)
        assert value["totals"] == {"Ada": 12.5, "Brian": 7.5}
        assert value["upstream_pid"] == first["pid"]  # read what the other machine wrote
        assert {node["cas_id"] for node in nodes.values()} <= set(raw_blobs(catalog).ids())
        assert len({move.run_id for move in catalog.tags.get_history("main")}) == 2
