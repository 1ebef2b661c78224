"""The HTTP server while Postgres kills its connections: every request gets an answer.

A real ``orchestrator serve`` on its own Postgres schema serves threads of clients that
patch a workflow and compare-and-swap a tag, while another thread keeps terminating the
server's backends (``pg_terminate_backend``). Every request must be answered: a success,
a conflict, or a 503 with ``Retry-After`` and a JSON error; never a 500, never a dropped
connection. Every success must be in the catalog's history afterwards.
"""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from core.errors import StorageUnavailableError, TransactionLostError
from core.storage import db as db_module
from core.storage.db import Database
from tests.http.server import serve

pytestmark = pytest.mark.faults

CLIENTS = 4
REQUESTS = 40
KILL_EVERY = 0.02
DAG = {"nodes": {"orders": {"deps": []}}}


@dataclass
class Outcomes:
    """What the clients saw: statuses, and the moves their successes reported."""

    statuses: list[int] = field(default_factory=list)
    unanswered: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    moves: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(
        self, http: httpx.Client, method: str, url: str, **options: Any
    ) -> httpx.Response | None:
        """Send one request; its answer, or ``None`` (recorded) if there was none."""
        request = f"{method} {url}"
        try:
            response = http.request(method, url, **options)
        except httpx.TransportError as error:  # no HTTP answer at all
            with self.lock:
                self.unanswered.append(f"{request}: {type(error).__name__}: {error}")
            return None
        status = response.status_code
        unavailable = (
            status == 503
            and bool(response.headers.get("Retry-After"))
            and response.json()["error"]["type"] == "unavailable"
        )
        with self.lock:
            self.statuses.append(status)
            if not unavailable and status not in (200, 201, 409):
                self.wrong.append(f"{request}: {status} {response.headers} {response.text}")
        return response

    def moved(self, tag: str, revision: int, target: str) -> None:
        with self.lock:
            self.moves.setdefault(tag, []).append((revision, target))


def _client(base: str, index: int, outcomes: Outcomes, artifacts: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        for round_ in range(REQUESTS):
            add = [{"op": "add", "path": f"/nodes/c{index}r{round_}", "value": {"deps": []}}]
            patched = outcomes.send(http, "PATCH", "/workflows/main", json=add)
            if patched is not None and patched.status_code == 200:
                body = patched.json()
                outcomes.moved("main", body["revision"], body["artifact_id"])
                artifacts.append(body["artifact_id"])
            got = outcomes.send(http, "GET", "/tags/prod")
            if got is None or got.status_code != 200 or not artifacts:
                continue
            target = artifacts[-1]
            etag = got.headers["ETag"]
            put = outcomes.send(
                http, "PUT", "/tags/prod", json={"target": target}, headers={"If-Match": etag}
            )
            if put is not None and put.status_code in (200, 201):
                body = put.json()
                outcomes.moved("prod", body["revision"], body["target_id"])


def _killer(admin: sa.Engine, application: str, stop: threading.Event) -> int:
    """Terminate the server's backends until ``stop``; how many it terminated."""
    killed = 0
    query = sa.text(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE application_name = :name AND pid <> pg_backend_pid()"
    )
    with admin.connect() as connection:
        while not stop.is_set():
            killed += connection.execute(query, {"name": application}).scalar_one()
            connection.commit()
            stop.wait(KILL_EVERY)
    return killed


@pytest.mark.slow
def test_killed_connections_get_answers_never_drops(
    postgres_schema_url: str, postgres_url: str, blob_root: Path, tmp_path: Path
) -> None:
    application = f"orchestrator-faults-{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_schema_url).update_query_dict({"application_name": application})
    log = tmp_path / "server.log"
    admin = sa.create_engine(postgres_url)
    with serve(url.render_as_string(hide_password=False), blob_root, log) as base:
        with httpx.Client(base_url=base, timeout=60) as http:
            created = http.post("/workflows", json={"name": "faults", "dag": DAG})
            assert created.status_code == 201, created.text
            first = created.json()["artifact_id"]
            assert http.put("/tags/prod", json={"target": first}).status_code == 201
        outcomes = Outcomes()
        stop = threading.Event()
        with ThreadPoolExecutor(CLIENTS + 1) as pool:
            killer = pool.submit(_killer, admin, application, stop)
            clients = [
                pool.submit(_client, base, index, outcomes, [first]) for index in range(CLIENTS)
            ]
            try:
                for client in clients:
                    client.result()
            finally:
                stop.set()
            killed = killer.result()
        with httpx.Client(base_url=base, timeout=60) as http:
            histories = {
                tag: {
                    m["revision"]: m["to_target_id"]
                    for m in http.get(f"/tags/{tag}/history").json()
                }
                for tag in ("main", "prod")
            }
    admin.dispose()
    counts = {status: outcomes.statuses.count(status) for status in set(outcomes.statuses)}
    print(f"terminated {killed} backends; answers {counts}")
    assert not outcomes.unanswered, (len(outcomes.unanswered), outcomes.unanswered[:5])
    assert not outcomes.wrong, (outcomes.wrong[:5], log.read_text()[-8000:])
    assert killed > 0, "no backend of the server was terminated"
    assert any(status in (200, 201) for status in outcomes.statuses), counts
    for tag, moves in outcomes.moves.items():
        for revision, target in moves:
            assert histories[tag].get(revision) == target, (tag, revision, target)


def test_a_transaction_dropped_before_commit_is_lost_and_can_run_again(
    postgres_schema_url: str,
) -> None:
    database = Database(postgres_schema_url)
    try:
        lost = pytest.raises(TransactionLostError, match="before it committed")
        with lost as raised, database.transaction() as session:
            session.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        assert "AdminShutdown" not in str(raised.value) and "terminating" in str(raised.value)
        with database.transaction() as session:  # the pool gives a live connection again
            assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_a_broken_connection_sqlalchemy_does_not_recognise_is_lost_not_an_error(
    postgres_schema_url: str,
) -> None:
    """psycopg sometimes words a broken connection so that SQLAlchemy does not see a
    disconnect ("connection socket closed", then "another command is already in
    progress" when the rollback is sent): the transaction is still lost, not a crash."""
    database = Database(postgres_schema_url)

    def unrecognised(context: sa.engine.ExceptionContext) -> None:
        context.is_disconnect = False

    sa.event.listen(database.engine, "handle_error", unrecognised)
    try:
        lost = pytest.raises(TransactionLostError, match="before it committed")
        with lost, database.transaction() as session:
            session.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        sa.event.remove(database.engine, "handle_error", unrecognised)
        with database.transaction() as session:  # the broken connection was not pooled
            assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        database.dispose()


def test_a_pooled_connection_whose_ping_fails_is_replaced(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ping of a connection whose socket closed may raise a ``ProgrammingError``
    (psycopg: "can't change 'autocommit' now"); the pool replaces it all the same."""
    monkeypatch.setattr(db_module, "PING_IDLE_AFTER", 0.0)  # ping whatever its idle time
    database = Database(postgres_schema_url)
    try:
        with database.transaction() as session:  # the pool now holds a connection
            session.execute(sa.text("SELECT 1"))
        dialect = database.engine.dialect
        ping = dialect.do_ping
        failed: list[object] = []

        def fails_once(dbapi_connection: Any) -> bool:
            if not failed:
                failed.append(dbapi_connection)
                raise psycopg.ProgrammingError("can't change 'autocommit' now")
            return ping(dbapi_connection)

        monkeypatch.setattr(dialect, "do_ping", fails_once)
        with database.transaction() as session:
            assert session.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert failed, "the pooled connection was not pinged"
    finally:
        database.dispose()


def test_a_transaction_dropped_while_committing_is_unavailable_not_lost(
    postgres_schema_url: str, postgres_url: str
) -> None:
    database = Database(postgres_schema_url)
    admin = sa.create_engine(postgres_url)
    try:
        unknown = pytest.raises(StorageUnavailableError, match="whether it was kept")
        with unknown as raised, database.transaction() as session:
            pid = session.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            with admin.begin() as connection:  # after the last statement, before COMMIT
                connection.execute(sa.text(f"SELECT pg_terminate_backend({pid})"))
        assert not isinstance(raised.value, TransactionLostError)  # so never retried
    finally:
        database.dispose()
        admin.dispose()


def test_a_connection_given_back_moments_ago_is_lent_unpinged(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ping is a round trip: the pool skips it for a connection used within the last
    ``PING_IDLE_AFTER`` seconds, and pings one idle for longer."""
    database = Database(postgres_schema_url)
    pinged: list[object] = []
    ping = database.engine.dialect.do_ping
    monkeypatch.setattr(database.engine.dialect, "do_ping", lambda c: pinged.append(c) or ping(c))
    monkeypatch.setattr(db_module, "PING_IDLE_AFTER", 60.0)  # a loaded machine stays inside
    try:
        for _ in range(3):
            with database.transaction() as session:
                session.execute(sa.text("SELECT 1"))
        assert pinged == []
        monkeypatch.setattr(db_module, "PING_IDLE_AFTER", 0.0)
        with database.transaction() as session:
            session.execute(sa.text("SELECT 1"))
        assert len(pinged) == 1
    finally:
        database.dispose()
