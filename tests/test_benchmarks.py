"""Every benchmark with a target is in ``bench/run_all.py``, so its figure is reported."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).parent.parent / "bench"


def test_every_benchmark_with_a_target_is_run_by_run_all() -> None:
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    assert spec is not None and spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    registered = {name for name, _ in run_all.benchmarks("postgresql+psycopg://bench")}
    registered |= {name for name, _ in run_all.benchmarks(None)}
    with_targets = {
        path.stem
        for path in BENCH.glob("*.py")
        if path.stem != "figures" and "figure(" in path.read_text()
    }
    assert with_targets - registered == set()


def test_the_baselines_step_processes_do_not_load_the_catalog() -> None:
    """A baseline step process must not pay for importing the catalog's package: the
    definitions of the multiprocess jobs import it for the versioned side only."""
    checks = {
        "bench.dagster_overhead_defs": {"BENCH_IO_MANAGER": "filesystem"},
        "bench.object_store_defs": {
            "BENCH_S3_IO_MANAGER": "s3pickle",
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
            "BENCH_S3_BUCKET": "bench",
        },
    }
    for module, env in checks.items():
        code = (
            f"import sys; sys.path.insert(0, {str(BENCH.parent)!r}); import {module}; "
            "loaded = sorted({name.split('.')[0] for name in sys.modules} "
            "& {'core', 'orchestrator_dagster'}); print(loaded)"
        )
        completed = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, **env, "PYTHONWARNINGS": "ignore"},
            capture_output=True,
            text=True,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        assert completed.stdout.splitlines()[-1:] == ["[]"], f"{module} loads {completed.stdout}"
