"""Every request gets an HTTP answer: dropped transactions are served again or answered
503, and an unexpected error is a 500 that leaves the connection open."""

import http.client
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import core
from core.errors import TransactionLostError
from core.handlers.errors import TRANSACTION_ATTEMPTS
from core.routes import create_app
from core.service.tag import TagService
from tests.http.server import serve_in_thread


def _failing(times: int, error: Callable[[], Exception]) -> tuple[list[int], Callable]:
    """A ``list_tags`` that raises ``error()`` on its first ``times`` calls."""
    calls: list[int] = []
    original = TagService.list_tags

    def list_tags(self: TagService) -> list[core.Tag]:
        calls.append(1)
        if len(calls) <= times:
            raise error()
        return original(self)

    return calls, list_tags


def _lost() -> Exception:
    return TransactionLostError("the catalog database dropped the transaction")


def test_a_dropped_transaction_is_served_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, list_tags = _failing(TRANSACTION_ATTEMPTS - 1, _lost)
    monkeypatch.setattr(TagService, "list_tags", list_tags)
    response = client.get("/tags")
    assert response.status_code == 200 and response.json() == []
    assert len(calls) == TRANSACTION_ATTEMPTS


def test_a_transaction_dropped_every_time_is_a_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, list_tags = _failing(TRANSACTION_ATTEMPTS, _lost)
    monkeypatch.setattr(TagService, "list_tags", list_tags)
    response = client.get("/tags")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["error"]["type"] == "unavailable"
    assert len(calls) == TRANSACTION_ATTEMPTS


def test_an_unavailable_database_is_not_served_again(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drop during COMMIT may have kept the change: answered, never run twice."""
    unknown = core.StorageUnavailableError("dropped while it committed")
    calls, list_tags = _failing(1, lambda: unknown)
    monkeypatch.setattr(TagService, "list_tags", list_tags)
    assert client.get("/tags").status_code == 503 and len(calls) == 1


def _statuses_on_one_connection(host: str, port: int, paths: list[str]) -> list[int]:
    """GET ``paths`` one after the other on one kept-alive connection (``http.client``
    never reconnects: a connection the server closed raises)."""
    connection = http.client.HTTPConnection(host, port, timeout=30)
    statuses = []
    try:
        for path in paths:
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
    finally:
        connection.close()
    return statuses


def test_an_unexpected_error_is_a_500_that_keeps_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _, list_tags = _failing(1, lambda: RuntimeError("a bug"))
    monkeypatch.setattr(TagService, "list_tags", list_tags)
    catalog = core.connect(f"duckdb:///{tmp_path / 'catalog.duckdb'}", tmp_path / "blobs")
    with catalog, serve_in_thread(create_app(catalog)) as (host, port):
        assert _statuses_on_one_connection(host, port, ["/tags", "/tags"]) == [500, 200]
    assert "a bug" in caplog.text  # logged with its traceback, not sent
