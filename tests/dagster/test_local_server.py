"""Multi-process runs with the local server on (the default outside this test suite):
the first steps start it and open the catalog themselves; the steps after it load no
storage; the catalog ends as a run with its own database would leave it, on both
databases."""

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

import core
from core import local_server
from core.local_server import LocalServer, server_for
from core.unix_socket import socket_answers
from orchestrator_dagster import OrchestratorResource, publish_run
from orchestrator_dagster.io_manager import PUBLISH_TAG_KEY
from tests.dagster import served_defs

WAIT = 60.0


@pytest.fixture
def local(
    database_url: str, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LocalServer]:
    """The local server on, for the step processes the test starts; its server is stopped
    after the test."""
    monkeypatch.setenv(local_server.LOCAL_SERVER_ENV, "on")
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", database_url)
    monkeypatch.setenv("ORCHESTRATOR_BLOB_ROOT", str(blob_root))
    server = server_for()  # as a step finds it: from the same environment and folder
    assert server is not None
    yield server
    server.stop()
    deadline = time.monotonic() + WAIT
    while socket_answers(server.socket_path) and time.monotonic() < deadline:
        time.sleep(0.05)


def run_branches(publish: str) -> str:
    """Run the branches job in step processes (published, with ``publish="run"``); its
    run id."""
    with dg.instance_for_test() as instance:
        job = dg.reconstructable(served_defs.branches_job)
        result = dg.execute_job(job, instance, tags={PUBLISH_TAG_KEY: publish})
        assert result.success
        if publish == "run":
            run = publish_run(result.run_id, instance=instance, orchestrator=OrchestratorResource())
            assert run is not None and run.outcome is not None
            # the second run's values are the first's: main holds them already
            assert run.outcome.state in (core.OutcomeState.PUBLISHED, core.OutcomeState.UNCHANGED)
        return result.run_id


@pytest.mark.slow
def test_steps_after_the_first_share_the_local_server_and_land_on_main(
    database_url: str, blob_root: Path, local: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # publish="output" goes through the same /steps routes (tests/dagster/test_served.py)
    publish = "run"
    first = run_branches(publish)
    deadline = time.monotonic() + WAIT
    while not socket_answers(local.socket_path):
        assert time.monotonic() < deadline, local.path("log").read_text()
        time.sleep(0.05)

    def opened(_: OrchestratorResource) -> core.Services:
        raise AssertionError("the run's end opened the catalog: its local server answers")

    monkeypatch.setattr(OrchestratorResource, "_connect", opened)
    second = run_branches(publish)  # published through the local server

    with core.connect(database_url, blob_root) as catalog:
        lineage = catalog.runs.get_run_io(second)
        outputs = {io.node: io for io in lineage if io.direction == core.Direction.OUTPUT}
        assert set(outputs) == {"numbers", *(f"branch_{i}" for i in range(served_defs.WIDTH))}
        for index in range(served_defs.WIDTH):
            stored = json.loads(catalog.cas.get_content(outputs[f"branch_{index}"].cas_id))
            assert stored == {"total": 45 + index, "loaded": []}, "a step loaded storage"
        reads = [io for io in lineage if io.direction == core.Direction.INPUT]
        assert {read.node for read in reads} == {"numbers"}
        history = catalog.tags.get_history("main")
        assert {move.run_id for move in history} <= {first, second}
        assert first in {move.run_id for move in history}
        for earlier, later in itertools.pairwise(history):
            assert later.from_target_id == earlier.to_target_id
