"""Every benchmark with a target is in ``bench/run_all.py``, so its figure is reported."""

import importlib.util
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
