"""The publish queue of Postgres (``core.service.publish_queue``): a publish waiting for
its tag's turn is landed by the turn's holder as a move of its own, one whose publisher
died is not, one that conflicts is left to its own publisher, and so are all when the
holder's line loses."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import core
from core.domain import Artifact
from core.repository.commit_store import RepositoryCommitStore
from core.repository.publish_request import (
    TURN_LOCK_CLASS,
    WAIT_LOCK_CLASS,
    LandedMove,
    PublishRequest,
    PublishRequestRepository,
)
from core.service.merges import Merges
from core.storage.commit_record import CommitRecord
from tests.integration.test_publish_concurrency import assert_gap_free

JSON = "application/json"
MAIN_TURN = "hashtext(current_schema() || '/main')"
"""SQL: the second key of ``main``'s turn in the catalog of the connection's schema."""


@pytest.fixture
def staged(postgres_schema_url: str, blob_root: Path) -> Iterator[core.Services]:
    """A Postgres catalog whose ``main`` holds ``base``, and a reader of it."""
    with core.connect(postgres_schema_url, blob_root) as catalog:
        catalog.assets.commit_output("seed", "main", "base", b"0", media_type=JSON)
        yield catalog


def stage(catalog: core.Services, run_id: str, node: str, value: bytes) -> None:
    catalog.runs.create_run(run_id, "main", publish="run")
    catalog.assets.commit_output(run_id, "main", node, value, media_type=JSON)


@contextmanager
def turn_held(url: str) -> Iterator[sa.Connection]:
    """Hold ``main``'s turn from a connection of our own until the block ends."""
    engine = sa.create_engine(url)
    turn = sa.text(f"SELECT pg_advisory_lock(:c, {MAIN_TURN})").bindparams(c=TURN_LOCK_CLASS)
    try:
        with engine.connect() as holder:
            holder.execute(turn)
            yield holder
    finally:
        engine.dispose()


def wait_for_waiters(connection: sa.Connection, count: int) -> None:
    """Until ``count`` sessions wait for ``main``'s turn in this catalog."""
    waiting = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        f"AND classid = :c AND objid = ({MAIN_TURN})::oid AND objsubid = 2"
    ).bindparams(c=TURN_LOCK_CLASS)
    poll_locks(
        connection, waiting, lambda n: n >= count, f"{count} publishers never waited for the turn"
    )


def poll_locks(
    connection: sa.Connection, count: sa.TextClause, done: Callable[[int], bool], what: str
) -> None:
    """Until ``done`` holds for what ``count`` counts in ``pg_locks`` (20 s at most)."""
    deadline = time.monotonic() + 20
    while not done(connection.execute(count).scalar_one()):
        assert time.monotonic() < deadline, what
        connection.commit()  # a transaction sees one snapshot of the activity
        time.sleep(0.02)


def publish_in_threads(
    url: str, blob_root: Path, run_ids: list[str], holder: sa.Connection
) -> dict[str, core.Publication | BaseException]:
    """Publish each run from a catalog of its own while ``holder`` holds the turn, and
    let go of it once they all wait: what each publish returned or raised."""
    results: dict[str, core.Publication | BaseException] = {}

    def publish(run_id: str) -> None:
        try:
            with core.connect(url, blob_root) as catalog:
                results[run_id] = catalog.runs.publish(run_id)
        except BaseException as exc:
            results[run_id] = exc

    threads = [threading.Thread(target=publish, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    wait_for_waiters(holder, len(run_ids))
    holder.execute(sa.text("SELECT pg_advisory_unlock_all()"))
    for thread in threads:
        thread.join(30)
    return results


def look_once_the_other_waits(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """The first holder looks for waiting requests once the other publisher waits for the
    turn again. Both wake when the turn is given up, and one takes it; between its
    statements the other shows no wait (so it is not landed, and publishes on its own
    after), which a loaded machine makes likely."""
    waiting = PublishRequestRepository.waiting
    looked: list[bool] = []

    def after_the_other(
        self: PublishRequestRepository, tag: str, limit: int, passed: Sequence[str] = ()
    ) -> list[tuple[PublishRequest, Artifact]]:
        if not looked:
            looked.append(True)
            engine = sa.create_engine(url)
            try:
                with engine.connect() as connection:
                    wait_for_waiters(connection, 1)
            finally:
                engine.dispose()
        return waiting(self, tag, limit, passed)

    monkeypatch.setattr(PublishRequestRepository, "waiting", after_the_other)


def kill_while_waiting(url: str, blob_root: Path, run_id: str) -> None:
    """Publish ``run_id`` from a process SIGKILLed while it waits for the turn; return
    once its session is gone too (Postgres notices a client gone only when the lock it
    waits for is granted, so it keeps showing a wait until the turn is given up)."""
    code = textwrap.dedent(
        f"""
        import core
        with core.connect({url!r}, {str(blob_root)!r}) as catalog:
            catalog.runs.publish({run_id!r})
        """
    )
    with turn_held(url) as holder:
        dying = subprocess.Popen([sys.executable, "-c", code])
        wait_for_waiters(holder, 1)
        os.kill(dying.pid, signal.SIGKILL)
        dying.wait()
        key = sa.text("SELECT wait_key FROM publish_requests WHERE run_id = :run_id")
        wait_key = holder.execute(key, {"run_id": run_id}).scalar_one()
    engine = sa.create_engine(url)
    shows_wait = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c "
        "AND objid = (:key)::oid AND objsubid = 2"
    ).bindparams(c=WAIT_LOCK_CLASS, key=wait_key)
    try:
        with engine.connect() as connection:
            poll_locks(
                connection, shows_wait, lambda n: n == 0, f"the session of {run_id!r} never ended"
            )
    finally:
        engine.dispose()


def count_landings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many moves each turn's holder landed for others, as they are written."""
    landed: list[int] = []
    mark = PublishRequestRepository.mark_landed

    def counted(
        self: PublishRequestRepository, moves: list[tuple[PublishRequest, LandedMove]]
    ) -> None:
        landed.append(len(moves))
        mark(self, moves)

    monkeypatch.setattr(PublishRequestRepository, "mark_landed", counted)
    return landed


def test_a_publish_waiting_for_the_turn_is_landed_by_its_holder(
    staged: core.Services,
    postgres_schema_url: str,
    blob_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage(staged, "first", "a", b"1")
    stage(staged, "second", "b", b"2")
    landed = count_landings(monkeypatch)
    look_once_the_other_waits(monkeypatch, postgres_schema_url)
    with turn_held(postgres_schema_url) as holder:
        results = publish_in_threads(postgres_schema_url, blob_root, ["first", "second"], holder)
    publications = [results["first"], results["second"]]
    assert all(isinstance(p, core.Publication) and p.changed for p in publications), results
    assert landed == [1]  # whichever held the turn landed the other
    history = staged.tags.get_history("main")
    assert sorted(move.run_id or "" for move in history[1:]) == ["first", "second"]
    assert_gap_free(history)
    by_run = {move.run_id: move for move in history[1:]}
    for publication in publications:
        assert isinstance(publication, core.Publication)
        move = by_run[publication.run_id]
        assert (publication.revision, publication.to_target_id) == (
            move.revision,
            move.to_target_id,
        )
        assert publication.from_target_id == move.from_target_id
        outcome = staged.runs.get_run(publication.run_id).outcome
        assert outcome is not None and outcome.state is core.OutcomeState.PUBLISHED
        assert outcome.to_target_id == move.to_target_id
    assert set(staged.workflows.get_workflow_by_tag("main")["nodes"]) == {"base", "a", "b"}
    assert staged.runs.publish("second").changed is False  # published once


def test_a_waiting_publish_that_conflicts_is_left_to_its_publisher(
    staged: core.Services,
    postgres_schema_url: str,
    blob_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stage(staged, "ours", "a", b"1")
    stage(staged, "theirs", "a", b"2")
    landed = count_landings(monkeypatch)
    with turn_held(postgres_schema_url) as holder:
        results = publish_in_threads(postgres_schema_url, blob_root, ["ours", "theirs"], holder)
    conflicts = [r for r in results.values() if isinstance(r, core.MergeConflictError)]
    published = [r for r in results.values() if isinstance(r, core.Publication)]
    assert len(conflicts) == 1 and len(published) == 1, results
    assert conflicts[0].conflicts == [("a", None)]
    assert landed == []  # the holder left it: its own publisher raised and recorded it
    loser = next(run_id for run_id, r in results.items() if isinstance(r, BaseException))
    outcome = staged.runs.get_run(loser).outcome
    assert outcome is not None and outcome.state is core.OutcomeState.CONFLICT
    assert len(staged.tags.get_history("main")) == 2


def test_a_holder_whose_own_request_conflicts_plans_its_merge_once(
    staged: core.Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage(staged, "ours", "a", b"1")
    stage(staged, "theirs", "a", b"2")
    assert staged.runs.publish("ours").changed
    planned: list[str | None] = []
    landing = Merges.landing

    def counted(self: Merges, *args: Any, **kwargs: Any) -> Any:
        planned.append(args[7])  # the run id
        return landing(self, *args, **kwargs)

    monkeypatch.setattr(Merges, "landing", counted)
    with pytest.raises(core.MergeConflictError) as raised:
        staged.runs.publish("theirs")
    assert raised.value.conflicts == [("a", None)]
    assert planned == ["theirs"]
    outcomes = {run_id: staged.runs.get_run(run_id).outcome for run_id in ("ours", "theirs")}
    assert {run_id: o and o.state for run_id, o in outcomes.items()} == {
        "ours": core.OutcomeState.PUBLISHED,
        "theirs": core.OutcomeState.CONFLICT,
    }


def test_a_publisher_that_died_waiting_is_not_landed(
    staged: core.Services, postgres_schema_url: str, blob_root: Path
) -> None:
    stage(staged, "dead", "a", b"1")
    stage(staged, "live", "b", b"2")
    kill_while_waiting(postgres_schema_url, blob_root, "dead")
    assert staged.runs.publish("live").changed
    history = staged.tags.get_history("main")
    assert [move.run_id for move in history[1:]] == ["live"]  # "dead" asked, nobody waits
    assert staged.runs.get_run("dead").outcome is None
    assert staged.runs.publish("dead").changed  # by hand, in place of the left request
    assert set(staged.workflows.get_workflow_by_tag("main")["nodes"]) == {"base", "a", "b"}


def test_requests_left_by_publishers_that_died_are_forgotten(
    staged: core.Services, postgres_schema_url: str, blob_root: Path
) -> None:
    stage(staged, "dead", "a", b"1")
    kill_while_waiting(postgres_schema_url, blob_root, "dead")
    engine = sa.create_engine(postgres_schema_url)
    count = sa.text("SELECT count(*) FROM publish_requests")
    try:
        with engine.connect() as connection:
            assert connection.execute(count).scalar_one() == 1
        with engine.begin() as connection:
            requests = PublishRequestRepository(sa.orm.Session(bind=connection))
            assert requests.forget_abandoned(datetime.now(UTC) - timedelta(hours=1)) == 0
            assert requests.forget_abandoned(datetime.now(UTC) + timedelta(minutes=1)) == 1
        with engine.connect() as connection:
            assert connection.execute(count).scalar_one() == 0
    finally:
        engine.dispose()


def test_a_holder_that_fails_gives_up_the_turn_and_its_request(
    staged: core.Services, postgres_schema_url: str
) -> None:
    """The turn is a lock of the publisher's connection, taken outside a transaction:
    a publish that raises while it holds it (a conflict) must give it up before its
    connection goes back to the pool, and withdraw its request."""
    stage(staged, "theirs", "a", b"1")
    staged.assets.commit_output("other", "main", "a", b"2", media_type=JSON)
    with pytest.raises(core.MergeConflictError):
        staged.runs.publish("theirs")
    engine = sa.create_engine(postgres_schema_url)
    held = sa.text(  # this catalog's turn only: other tests publish in other schemas
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = :c "
        f"AND objid = ({MAIN_TURN})::oid AND objsubid = 2"
    ).bindparams(c=TURN_LOCK_CLASS)
    try:
        with engine.connect() as connection:
            assert connection.execute(held).scalar_one() == 0
            requests = sa.text("SELECT count(*) FROM publish_requests")
            assert connection.execute(requests).scalar_one() == 0
    finally:
        engine.dispose()
    stage(staged, "next", "b", b"3")
    assert staged.runs.publish("next").changed  # nobody holds the turn


def test_a_holder_whose_line_lost_publishes_alone_and_leaves_the_rest_waiting(
    staged: core.Services,
    postgres_schema_url: str,
    blob_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``LineLost``: the writes of a holder's line lose (a merge version of theirs was
    recorded meanwhile). The holder's transaction rolls back and it publishes alone; the
    request it would have landed stays with its publisher, which takes the turn next."""
    stage(staged, "first", "a", b"1")
    stage(staged, "second", "b", b"2")
    landed = count_landings(monkeypatch)
    lines: list[int] = []
    apply_line = RepositoryCommitStore.apply_line

    def loses_once(self: RepositoryCommitStore, records: Sequence[CommitRecord]) -> int | None:
        lines.append(len(records))
        return None if len(lines) == 1 else apply_line(self, records)

    monkeypatch.setattr(RepositoryCommitStore, "apply_line", loses_once)
    look_once_the_other_waits(monkeypatch, postgres_schema_url)
    with turn_held(postgres_schema_url) as holder:
        results = publish_in_threads(postgres_schema_url, blob_root, ["first", "second"], holder)
    assert all(isinstance(r, core.Publication) and r.changed for r in results.values()), results
    assert lines[0] == 2  # the holder's own move and the other's, lost together
    assert landed == []  # nobody landed another's request: each published its own
    history = staged.tags.get_history("main")
    assert sorted(move.run_id or "" for move in history[1:]) == ["first", "second"]
    assert_gap_free(history)
    for run_id in ("first", "second"):
        outcome = staged.runs.get_run(run_id).outcome
        assert outcome is not None and outcome.state is core.OutcomeState.PUBLISHED
    assert set(staged.workflows.get_workflow_by_tag("main")["nodes"]) == {"base", "a", "b"}
