"""Publishing under load and under SIGKILL: every run that does not conflict lands,
nothing is lost, the tag's history is a gap-free chain, and a killed publisher leaves the
tag at the old version or the new one, never between."""

import contextlib
import itertools
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

import core
from core.service import run_publishing
from tests.support import workers
from tests.support.helpers import started_pool

JSON = "application/json"
PROCESSES = 4
RUNS_EACH = 4


def stage(catalog: core.Services, count: int, prefix: str = "run") -> list[str]:
    """``count`` staged runs on ``main``'s current target, each writing a node of its own."""
    run_ids = [f"{prefix}-{i}" for i in range(count)]
    for run_id in run_ids:
        catalog.runs.create_run(run_id, "main", publish="run")
        catalog.assets.commit_output(
            run_id, "main", f"node-{run_id}", run_id.encode(), media_type=JSON
        )
    return run_ids


def assert_gap_free(history: list[core.TagMove]) -> None:
    for before, after in itertools.pairwise(history):
        assert after.revision == before.revision + 1
        assert after.from_target_id == before.to_target_id


@pytest.mark.slow
def test_concurrent_publishes_land_every_run(
    catalog: core.Services, database_url: str, blob_root: Path
) -> None:
    catalog.assets.commit_output("seed", "main", "base", b"0", media_type=JSON)
    run_ids = stage(catalog, PROCESSES * RUNS_EACH)
    with started_pool(PROCESSES) as (pool, start_at):
        futures = [
            pool.submit(
                workers.publish_runs,
                database_url,
                str(blob_root),
                run_ids[i::PROCESSES],
                start_at,
            )
            for i in range(PROCESSES)
        ]
        moved = [changed for future in futures for changed in future.result()]
    assert all(moved) and len(moved) == len(run_ids)
    nodes = catalog.workflows.get_workflow_by_tag("main")["nodes"]
    assert set(nodes) == {"base", *(f"node-{run_id}" for run_id in run_ids)}
    history = catalog.tags.get_history("main")
    assert len(history) == 1 + len(run_ids)
    assert sorted(move.run_id for move in history[1:]) == sorted(run_ids)  # one move each
    assert_gap_free(history)
    for run_id in run_ids:
        outcome = catalog.runs.get_run(run_id).outcome
        assert outcome is not None and outcome.state is core.OutcomeState.PUBLISHED


def start_publisher(url: str, blob_root: Path, run_ids: list[str]) -> subprocess.Popen[str]:
    code = textwrap.dedent(
        f"""
        import core
        with core.connect({url!r}, {str(blob_root)!r}) as catalog:
            for run_id in {run_ids!r}:
                catalog.runs.publish(run_id)
                print(run_id, flush=True)
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
def test_a_killed_publisher_leaves_the_tag_whole(
    catalog: core.Services, database_url: str, blob_root: Path
) -> None:
    catalog.assets.commit_output("seed", "main", "base", b"0", media_type=JSON)
    run_ids = stage(catalog, 24)
    pending = list(run_ids)
    rng = random.Random(7)
    for kill in range(4):
        publisher = start_publisher(database_url, blob_root, pending)
        assert publisher.stdout is not None
        published = {publisher.stdout.readline().strip() for _ in range(2 + kill)}
        time.sleep(rng.uniform(0, 0.02))  # somewhere inside the next publish
        os.kill(publisher.pid, signal.SIGKILL)
        rest, errors = publisher.communicate()
        assert publisher.returncode == -signal.SIGKILL, errors
        published |= set(rest.split("\n")[:-1])  # a line cut by the kill is left out
        with core.connect(database_url, blob_root) as after:
            history = after.tags.get_history("main")
            landed = {move.run_id for move in history[1:]}
            assert published <= landed  # every publish the process reported is there
            nodes = set(after.workflows.get_workflow_by_tag("main")["nodes"])
            # the tag holds exactly the runs whose publish moved it: never half a run
            assert nodes == {"base", *(f"node-{run_id}" for run_id in landed)}
            assert_gap_free(history)
        pending = [run_id for run_id in pending if run_id not in landed]
    with core.connect(database_url, blob_root) as after:
        for run_id in run_ids:
            after.runs.publish(run_id)
        nodes = set(after.workflows.get_workflow_by_tag("main")["nodes"])
        assert nodes == {"base", *(f"node-{run_id}" for run_id in run_ids)}
        assert len(after.tags.get_history("main")) == 1 + len(run_ids)
        assert after.maintenance.verify().problems == []


def test_two_publishes_of_one_run_leave_it_published(
    postgres_schema_url: str, blob_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes publish the same run at once (Postgres: on DuckDB one process holds
    the file): the second, which read the run before the first landed it, must not
    record it as unchanged over the first's published outcome."""
    with core.connect(postgres_schema_url, blob_root) as setup:
        setup.assets.commit_output("seed", "main", "base", b"0", media_type=JSON)
        setup.runs.create_run("wap", "main", publish="run")
        setup.assets.commit_output("wap", "main", "a", b"1", media_type=JSON)
    both_read = threading.Barrier(2, timeout=3)
    read = run_publishing._staged_run

    def read_then_wait(uow: object, run_id: str, **options: bool) -> object:
        run = read(uow, run_id, **options)  # type: ignore[arg-type]
        # both read the run before either locks the tag (unless one waits on the other)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait()
        return run

    monkeypatch.setattr(run_publishing, "_staged_run", read_then_wait)
    errors: list[BaseException] = []
    publishing = (postgres_schema_url, blob_root, errors)
    threads = [threading.Thread(target=_publish, args=publishing) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    with core.connect(postgres_schema_url, blob_root) as after:
        outcome = after.runs.get_run("wap").outcome
        assert outcome is not None and outcome.state is core.OutcomeState.PUBLISHED
        assert outcome.to_target_id == after.tags.get_tag("main").target_id
        assert len(after.tags.get_history("main")) == 2


def test_a_publish_waiting_on_the_tag_obeys_a_policy_set_meanwhile(
    postgres_schema_url: str, blob_root: Path
) -> None:
    """A publish queued on the tag's lock while the tag is made immutable (Postgres: on
    DuckDB one process holds the file) refuses to move it once it gets the lock."""
    with core.connect(postgres_schema_url, blob_root) as setup:
        setup.assets.commit_output("seed", "main", "base", b"0", media_type=JSON)
        setup.runs.create_run("wap", "main", publish="run")
        setup.assets.commit_output("wap", "main", "a", b"1", media_type=JSON)
        before = setup.tags.get_tag("main").target_id
    holder = sa.create_engine(postgres_schema_url)
    errors: list[BaseException] = []

    try:
        with holder.begin() as held:  # another writer holds the tag's row
            held.execute(sa.text("SELECT name FROM tags WHERE name = 'main' FOR UPDATE"))
            publishing = (postgres_schema_url, blob_root, errors)
            publisher = threading.Thread(target=_publish, args=publishing)
            publisher.start()
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE :locks_tags"
            ).bindparams(locks_tags="%FROM tags%FOR UPDATE OF tags%")
            with holder.connect() as watch:
                deadline = time.monotonic() + 20
                while not watch.execute(waiting).scalar() and time.monotonic() < deadline:
                    watch.rollback()  # a transaction sees one snapshot of the activity
                    time.sleep(0.05)
            with core.connect(postgres_schema_url, blob_root) as admin:
                admin.tags.set_policy("main", immutable=True, moved_by="ann")
        publisher.join(30)
    finally:
        holder.dispose()
    assert [type(exc) for exc in errors] == [core.PolicyError]
    with core.connect(postgres_schema_url, blob_root) as after:
        assert after.tags.get_tag("main").target_id == before


def _publish(database_url: str, blob_root: Path, errors: list[BaseException]) -> None:
    """Publish run ``wap`` from a catalog of its own; what it raised goes to ``errors``."""
    try:
        with core.connect(database_url, blob_root) as catalog:
            catalog.runs.publish("wap")
    except BaseException as exc:
        errors.append(exc)
