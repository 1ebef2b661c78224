"""An HTTP client over the app, on each backend."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import core
from core.routes import create_app


@pytest.fixture
def client(catalog: core.Services) -> Iterator[TestClient]:
    with TestClient(create_app(catalog), raise_server_exceptions=False) as client:
        yield client
