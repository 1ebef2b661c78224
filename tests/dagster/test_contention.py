"""A multi-process run of 8 parallel assets while a sensor ticks every second in another
process, on the DuckDB default: no step fails."""

import sys
import time
from pathlib import Path
from subprocess import Popen

import dagster as dg
import pytest

import core
from tests.dagster import contention_defs

ROOT = Path(__file__).parent.parent.parent


@pytest.mark.slow
def test_parallel_steps_with_a_ticking_sensor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", url)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(tmp_path / "blobs"))
    stop, ticks = tmp_path / "stop", tmp_path / "ticks"
    ticker = Popen(
        [
            sys.executable,
            "-c",
            "import sys; from tests.dagster.contention_defs import tick_forever;"
            " tick_forever(sys.argv[1], sys.argv[2])",
            str(stop),
            str(ticks),
        ],
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not ticks.exists():
            assert ticker.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        with dg.instance_for_test() as instance:
            result = dg.execute_job(dg.reconstructable(contention_defs.contention_job), instance)
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success and failures == []
        with core.connect(url, tmp_path / "blobs") as catalog:
            last_move = catalog.tags.get_history("main")[-1].id
        deadline = time.monotonic() + 60  # the sensor ticks about once a second
        while sensor_cursor(ticks) != str(last_move):
            assert ticker.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        stop.touch()
        ticker.wait(60)
    assert ticker.returncode == 0
    tick_count, cursor = ticks.read_text().split()
    assert int(tick_count) >= 3
    with core.connect(url, tmp_path / "blobs") as catalog:
        history = catalog.tags.get_history("main")
        assert len(history) == contention_defs.WIDTH
        assert int(cursor) == history[-1].id  # the sensor saw the last move


def sensor_cursor(ticks: Path) -> str | None:
    """The cursor the ticker last wrote (``None`` if the file was caught mid-write)."""
    fields = ticks.read_text().split()
    return fields[1] if len(fields) == 2 else None
