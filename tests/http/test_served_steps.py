"""``ServedSteps`` against a real ``orchestrator serve``: what a step asks of a served
catalog comes back as the catalog answers it in process, errors as the same domain
errors, on both backends."""

import hashlib
import io
import json
import socket
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import core
from core import client
from core.client import ServedSteps
from core.service.asset import LARGE_VALUE
from tests.http.server import serve


@pytest.fixture
def served(database_url: str, blob_root: Path, tmp_path: Path) -> Iterator[ServedSteps]:
    with serve(database_url, blob_root, tmp_path / "server.log") as url:
        steps = ServedSteps(url)
        yield steps
        steps.close()


def direct(database_url: str, blob_root: Path) -> core.Services:
    """The same catalog opened in this process (on DuckDB the server hands the file over)."""
    return core.connect(database_url, blob_root)


def test_a_run_commits_and_reads_through_the_server(
    served: ServedSteps, database_url: str, blob_root: Path
) -> None:
    snapshot_id, base_id = served.pin("run-1", "main", job_name="etl")
    assert base_id is None
    first = served.commit_output(
        "run-1", "main", "orders", b"[1,2,3]", media_type="application/json"
    )
    assert (first.tag, first.revision, first.changed) == ("main", 1, True)
    assert first.value.cas_id == "sha256:" + hashlib.sha256(b"[1,2,3]").hexdigest()
    second = served.commit_output(
        "run-1", "main", "revenue", b"6", media_type="application/json", deps=["orders"]
    )
    assert second.from_version_hash == first.version_hash and second.revision == 2
    again = served.commit_output(
        "run-1", "main", "revenue", b"6", media_type="application/json", deps=["orders"]
    )
    assert not again.changed and again.revision == 2

    located = served.locate_input("run-1", "main", "orders")
    assert located == first.value
    assert served.read(located) == b"[1,2,3]"
    with served.open(located) as handle:
        assert handle.read() == b"[1,2,3]"
    served.flush_reads("run-1")
    assert served.locate_input(None, "main", "revenue") == second.value  # the tag, now

    with direct(database_url, blob_root) as catalog:
        run = catalog.runs.get_run("run-1")
        assert (run.snapshot_id, run.job_name) == (snapshot_id, "etl")
        assert catalog.workflows.get_workflow_by_tag("main")["nodes"]["revenue"]["deps"] == [
            "orders"
        ]
        lineage = catalog.runs.get_run_io("run-1")
        assert {(io.direction, io.node) for io in lineage} == {
            (core.Direction.OUTPUT, "orders"),
            (core.Direction.OUTPUT, "revenue"),
            (core.Direction.INPUT, "orders"),
        }


def test_a_value_above_the_large_value_bound_streams_both_ways(served: ServedSteps) -> None:
    content = bytes(range(256)) * (LARGE_VALUE // 256 * 3 + 7)
    served.pin("run-big", "main")
    commit = served.commit_output_stream(
        "run-big", "main", "big", io.BytesIO(content), media_type="application/octet-stream"
    )
    assert commit.value.cas_id == "sha256:" + hashlib.sha256(content).hexdigest()
    assert commit.value.size == len(content)
    op_value = served.commit_step_output(
        "run-big", "main", "emit.result", content, media_type="application/octet-stream"
    )
    assert op_value.cas_id == commit.value.cas_id
    found = served.locate_step_output("run-big", "main", "run-big", "emit.result")
    with served.open(found) as handle:
        assert handle.read() == content
    assert served.read(served.locate_input("run-big", "main", "big")) == content


def test_a_staged_run_reads_its_own_values_and_the_tag_does_not_move(
    served: ServedSteps, database_url: str, blob_root: Path
) -> None:
    served.pin("staged", "main", publish="run")
    commit = served.commit_output(
        "staged", "main", "orders", b"[1]", media_type="application/json", publish="run"
    )
    assert served.read(served.locate_input("staged", "main", "orders")) == b"[1]"
    with direct(database_url, blob_root) as catalog:
        assert catalog.tags.get_history("main") == []
        assert catalog.runs.get_run("staged").head_id == commit.artifact_id


def test_a_runs_end_is_recorded_and_audited_through_the_server(
    served: ServedSteps, database_url: str, blob_root: Path
) -> None:
    served.pin("staged", "main", publish="run")
    commit = served.commit_output(
        "staged", "main", "orders", b"[1]", media_type="application/json", publish="run"
    )
    ended_at = datetime(2026, 12, 6, 8, 30, tzinfo=UTC)
    ended = served.end_run("staged", "success", finished_at=ended_at)
    with direct(database_url, blob_root) as catalog:
        assert ended == catalog.runs.get_run("staged")
        assert catalog.tags.get_tag("main").target_id == commit.artifact_id
    assert ended.finished_at == ended_at and ended.outcome is not None
    assert (ended.outcome.state, ended.outcome.to_target_id) == (
        core.OutcomeState.PUBLISHED,
        commit.artifact_id,
    )
    with pytest.raises(core.NotFoundError, match="'missing'"):
        served.end_run("missing", "success")
    with pytest.raises(core.ValidationError, match="'done'"):
        served.end_run("staged", "done")
    with pytest.raises(core.ValidationError, match="failed_checks"):
        served.end_run("staged", "success", failed_checks="a:fresh")


def test_errors_come_back_as_the_domain_errors_the_server_raised(
    served: ServedSteps, database_url: str, blob_root: Path
) -> None:
    served.pin("run-1", "main")
    with pytest.raises(core.ConflictError, match="run-1"):
        served.pin("run-1", "main", publish="run")
    with pytest.raises(core.ValidationError, match="'sometimes'"):
        served.pin("run-2", "main", publish="sometimes")
    with pytest.raises(core.NotFoundError, match="'missing'"):
        served.locate_input("run-1", "main", "missing")
    with pytest.raises(core.ValidationError, match="run id"):
        served.commit_output("", "main", "orders", b"1", media_type="application/json")
    with pytest.raises(core.StorageUnavailableError, match="no such route"):
        ServedSteps(served.url + "/elsewhere").pin("run-1", "main")

    with direct(database_url, blob_root) as catalog:
        catalog.tags.set_policy("prod", protected=True)
    with pytest.raises(core.PolicyError, match="prod") as refused:
        served.commit_output("run-3", "prod", "orders", b"1", media_type="application/json")
    assert (refused.value.tag, refused.value.pattern) == ("prod", "prod")
    with direct(database_url, blob_root) as catalog:
        assert catalog.tags.get_history("prod") == []


def test_a_reused_connection_that_fails_is_replaced(served: ServedSteps) -> None:
    served.pin("run-1", "main")
    connection = served._local.connection
    connection.sock.shutdown(socket.SHUT_RDWR)  # as a server that closed it while idle
    served.pin("run-1", "main")
    assert served._local.connection is not connection


def test_a_server_that_does_not_answer_is_unavailable_naming_its_url() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with pytest.raises(core.StorageUnavailableError, match=url):
        ServedSteps(url).pin("run-1", "main")


@pytest.mark.parametrize(
    "url", ["https://catalog:8000", "catalog:8000", "http://", "http://h?x=1", "http://h:port"]
)
def test_a_malformed_server_url_is_refused_naming_it(url: str) -> None:
    with pytest.raises(core.ValidationError, match="invalid server url"):
        ServedSteps(url)


def test_an_answer_that_is_no_error_body_names_the_status() -> None:
    error = client._error("http://h:1", 502, b"<html>bad gateway</html>")
    assert type(error) is core.OrchestratorError and "502" in str(error)
    conflict = client._error(
        "http://h:1",
        409,
        json.dumps(
            {
                "error": {
                    "type": "conflict",
                    "message": "m",
                    "conflicts": [{"node": "a", "partition_key": None}],
                }
            }
        ).encode(),
    )
    assert isinstance(conflict, core.MergeConflictError) and conflict.conflicts == [("a", None)]


def test_a_client_gone_in_the_middle_of_its_body_commits_nothing(
    served: ServedSteps, database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    served.pin("run-cut", "main")
    host, port = served.url.removeprefix("http://").split(":")
    query = "run_id=run-cut&tag=main&node=big&media_type=application%2Foctet-stream"
    chunk = b"x" * (1 << 20)
    with socket.create_connection((host, int(port))) as cut:
        cut.sendall(
            f"POST /steps/outputs?{query} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(3):  # above LARGE_VALUE: the server has spilled it to a file
            cut.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        cut.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset
    # the server goes on answering, and nothing of the cut value is anywhere
    assert (
        served.commit_output(
            "run-cut", "main", "small", b"1", media_type="application/json"
        ).revision
        == 1
    )
    with direct(database_url, blob_root) as catalog:
        assert set(catalog.workflows.get_workflow_by_tag("main")["nodes"]) == {"small"}
        assert [move.revision for move in catalog.tags.get_history("main")] == [1]
        outputs = [io.node for io in catalog.runs.get_run_io("run-cut")]
        assert outputs == ["small"]
    assert "unexpected error" not in (tmp_path / "server.log").read_text()


def test_an_answer_broken_off_is_unavailable_not_a_damaged_value() -> None:
    """A server that stops in the middle of a value's bytes: the step is told the server
    failed (it may try again), not that the stored value is damaged."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def answer_half() -> None:
            for _ in range(2):  # read, then open
                connection, _ = listener.accept()
                with connection:
                    connection.recv(65536)
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10
                    )

        server = threading.Thread(target=answer_half, daemon=True)
        server.start()
        steps = ServedSteps(f"http://127.0.0.1:{listener.getsockname()[1]}")
        value = core.NodeValue("orders", None, "sha256:" + "0" * 64, "application/json", 100)
        with pytest.raises(core.StorageUnavailableError, match="broke off"):
            steps.read(value)
        with pytest.raises(core.StorageUnavailableError, match="broke off"):
            steps.open(value)
        server.join(10)


def test_a_value_the_server_stored_otherwise_than_sent_is_an_integrity_error() -> None:
    sent = client._Hashing(io.BytesIO(b"[1,2,3]"))
    assert sent.read() == b"[1,2,3]"
    sent.check(
        core.NodeValue("n", None, "sha256:" + hashlib.sha256(b"[1,2,3]").hexdigest(), "t", 7)
    )
    with pytest.raises(core.IntegrityError, match="sent to the served catalog"):
        sent.check(core.NodeValue("n", None, "sha256:" + "0" * 64, "t", 7))


def test_a_server_that_stops_writes_the_reads_no_commit_carried(
    database_url: str, blob_root: Path, tmp_path: Path
) -> None:
    with serve(database_url, blob_root, tmp_path / "server.log") as url:
        steps = ServedSteps(url)
        steps.commit_output("run-1", "main", "orders", b"[1]", media_type="application/json")
        steps.locate_input("run-1", "main", "orders")  # noted on the server, not flushed
        steps.close()
    with direct(database_url, blob_root) as catalog:
        lineage = catalog.runs.get_run_io("run-1")
        assert (core.Direction.INPUT, "orders") in {(io.direction, io.node) for io in lineage}
