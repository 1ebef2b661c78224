"""Fixtures: every core test runs against a DuckDB file and against Postgres; blob tests
also run against a local folder and an S3 bucket on a loopback moto server, and the
object-store tests against a GCS bucket on a loopback fake-gcs-server and an Azure
container on a loopback Azurite too."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import core
from core.local_server import LOCAL_SERVER_ENV, RUNTIME_DIR_ENV, stop_started
from tests.support.azurite import (
    azurite_command,
    azurite_server,
    emulator_environment,
    new_container,
)
from tests.support.fake_gcs import fake_gcs_server, new_gcs_bucket, service_account
from tests.support.moto_server import CREDENTIALS, moto_server, new_bucket

POSTGRES_ENV = "ORCHESTRATOR_TEST_POSTGRES_URL"


@pytest.fixture(scope="session", autouse=True)
def local_servers_off(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Step processes open the catalog themselves unless a test turns the local server on
    (tests/dagster/test_local_server.py); the servers such tests start live in a folder
    of this session's, and are stopped as it ends. Yields that folder."""
    runtime = tmp_path_factory.mktemp("runtime")
    runtime.chmod(0o700)
    saved = {name: os.environ.get(name) for name in (LOCAL_SERVER_ENV, RUNTIME_DIR_ENV)}
    os.environ[LOCAL_SERVER_ENV] = "off"
    os.environ[RUNTIME_DIR_ENV] = str(runtime)
    try:
        yield runtime
    finally:
        for started in runtime.glob("*.started"):
            stop_started(started)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="session")
def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"Postgres tests need {POSTGRES_ENV} (e.g. postgresql+psycopg://...)")
    return url


@pytest.fixture
def postgres_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield (
            make_url(postgres_url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["duckdb", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'catalog.duckdb'}"
    return request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def blob_root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def catalog(database_url: str, blob_root: Path) -> Iterator[core.Services]:
    with core.connect(database_url, blob_root) as services:
        yield services


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server on loopback for the whole session; the standard AWS environment
    (endpoint, dummy credentials, region) points at it meanwhile."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log) as endpoint, pytest.MonkeyPatch.context() as patch:
        for name, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3"):
            patch.delenv(name, raising=False)
        yield endpoint


@pytest.fixture
def s3_blob_root(moto_endpoint: str) -> str:
    """``s3://<a fresh bucket>/blobs`` on the loopback server."""
    return f"s3://{new_bucket(moto_endpoint)}/blobs"


@pytest.fixture(scope="session")
def gcs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """fake-gcs-server on loopback for the whole session (see tests/support/fake_gcs.py);
    the standard Google environment points obstore at it meanwhile: its base URL and a
    service-account key without OAuth (so no request ever looks for Google's metadata
    server)."""
    log = tmp_path_factory.mktemp("gcs") / "fake-gcs-server.log"
    with fake_gcs_server(log) as endpoint, pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("GOOGLE_")]:
            patch.delenv(name)
        patch.setenv("GOOGLE_SERVICE_ACCOUNT_KEY", service_account(endpoint))
        patch.setenv("GOOGLE_BASE_URL", endpoint)  # plain http only where this says so
        yield endpoint


@pytest.fixture
def gs_blob_root(gcs_endpoint: str) -> str:
    """``gs://<a fresh bucket>/blobs`` on the loopback fake-gcs-server."""
    return f"gs://{new_gcs_bucket(gcs_endpoint)}/blobs"


@pytest.fixture(scope="session")
def azurite_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An Azurite blob service on loopback for the whole session; the standard Azure
    environment points obstore at it (emulator mode, its well-known account) meanwhile.
    Skipped, saying why, where Azurite is not installed (it needs npm)."""
    command = azurite_command()
    if command is None:
        pytest.skip(
            "Azurite is not installed: `npm install --prefix .ci azurite` (as .ci/run does) "
            "runs the Azure tests"
        )
    log = tmp_path_factory.mktemp("azurite") / "azurite.log"
    with azurite_server(command, log) as endpoint, pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("AZURE_")]:
            patch.delenv(name)
        for name, value in emulator_environment(endpoint).items():
            patch.setenv(name, value)
        yield endpoint


@pytest.fixture
def az_blob_root(azurite_endpoint: str) -> str:
    """``az://<a fresh container>/blobs`` on the loopback Azurite."""
    return f"az://{new_container(azurite_endpoint)}/blobs"


@pytest.fixture(params=["s3", "gs", "az"])
def object_blob_root(request: pytest.FixtureRequest) -> str:
    """A fresh bucket or container of each kind of object store, on loopback."""
    root: str = request.getfixturevalue(f"{request.param}_blob_root")
    return root


@pytest.fixture(params=["local", "s3"])
def any_blob_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """A blob root of each kind: a local folder, then a fresh bucket on moto."""
    if request.param == "local":
        return tmp_path / "blobs"
    root: str = request.getfixturevalue("s3_blob_root")
    return root


@pytest.fixture
def any_catalog(database_url: str, any_blob_root: Path | str) -> Iterator[core.Services]:
    """The catalog over each database and each kind of blob store."""
    with core.connect(database_url, any_blob_root) as services:
        yield services
