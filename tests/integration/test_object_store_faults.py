"""An object store that cannot be used is one clear error naming its URL, never a
secret and never a traceback: ``StorageUnavailableError`` (CLI exit 5, HTTP 503, a failed
Dagster run with the message) or, for a malformed URL, ``ValidationError`` (CLI exit 2).
Every server here is a moto server or an Azurite on loopback."""

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from fastapi.testclient import TestClient

import core
from core.routes import create_app
from orchestrator_dagster import OrchestratorResource, VersionedIOManager
from tests.support.blob_access import raw_blobs
from tests.support.local_server import free_port
from tests.support.moto_server import moto_server, new_bucket

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")
SECRET = "testing-secret"  # the session's AWS_SECRET_ACCESS_KEY (tests/support/moto_server.py)
MISSING = {
    "s3": "s3://no-such-bucket-here/blobs",
    "gs": "gs://no-such-bucket-here/blobs",
    "az": "az://no-such-container-here/blobs",
}
"""A bucket or container that does not exist, on each loopback server."""
ENDPOINT_VARIABLE = {
    "s3": "AWS_ENDPOINT_URL",
    "gs": "GOOGLE_BASE_URL",
    "az": "AZURITE_BLOB_STORAGE_URL",
}
SERVERS = {"s3": "moto_endpoint", "gs": "gcs_endpoint", "az": "azurite_endpoint"}


@pytest.fixture(params=list(SERVERS))
def scheme(request: pytest.FixtureRequest) -> str:
    """``s3``, ``gs`` or ``az``, with its loopback server running and the cloud's
    environment pointing at it."""
    request.getfixturevalue(SERVERS[request.param])
    return str(request.param)


@pytest.fixture(scope="module")
def checking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server that checks credentials (and knows none of ours)."""
    log = tmp_path_factory.mktemp("moto-auth") / "moto.log"
    with moto_server(log, INITIAL_NO_AUTH_ACTION_COUNT="0") as endpoint:
        yield endpoint


def orchestrator(database_url: str, blob_root: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ORCHESTRATOR, "--database-url", database_url, "--blob-root", blob_root, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def assert_clear(message: str, url: str, reason: str) -> None:
    assert url in message, message
    assert reason in message, message
    assert SECRET not in message
    assert "Traceback" not in message


def test_a_missing_bucket_is_unavailable_naming_the_url(database_url: str, scheme: str) -> None:
    url = MISSING[scheme]
    with pytest.raises(core.StorageUnavailableError) as raised:
        core.connect(database_url, url)
    assert_clear(str(raised.value), url, "does not exist")


def test_an_unreachable_endpoint_is_unavailable_within_seconds(
    database_url: str, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENDPOINT_VARIABLE[scheme], f"http://127.0.0.1:{free_port()}")  # nobody
    url = f"{scheme}://some-bucket/blobs"
    started = time.monotonic()
    with pytest.raises(core.StorageUnavailableError) as raised:
        core.connect(database_url, url)
    assert time.monotonic() - started < 30
    assert_clear(str(raised.value), url, "cannot be reached")


def test_plain_http_is_used_only_when_the_endpoint_says_http(
    database_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The moto server speaks plain http: named as https, it is not downgraded."""
    bucket = new_bucket(moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint.replace("http://", "https://"))
    with pytest.raises(core.StorageUnavailableError, match=f"s3://{bucket}/blobs"):
        core.connect(database_url, f"s3://{bucket}/blobs")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    with core.connect(database_url, f"s3://{bucket}/blobs") as catalog:
        assert catalog.cas.get_content(catalog.cas.store_content(b"x")) == b"x"


def test_denied_credentials_are_unavailable_without_the_secret(
    database_url: str, checking_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", checking_server)
    url = "s3://any-bucket/blobs"
    with pytest.raises(core.StorageUnavailableError) as raised:
        core.connect(database_url, url)
    assert_clear(str(raised.value), url, "access denied")


def test_a_wrong_azure_account_key_is_denied_without_the_key(
    database_url: str, az_blob_root: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong_key = base64.b64encode(b"not the emulator's key").decode()
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", wrong_key)
    with pytest.raises(core.StorageUnavailableError) as raised:
        core.connect(database_url, az_blob_root)
    assert_clear(str(raised.value), az_blob_root, "access denied")
    assert wrong_key not in str(raised.value)


def test_the_cli_exits_5_naming_a_missing_container(
    database_url: str, azurite_endpoint: str, tmp_path: Path
) -> None:
    core.connect(database_url, tmp_path / "blobs").close()  # the catalog exists
    missing = orchestrator(database_url, MISSING["az"], "tags")
    assert missing.returncode == 5
    assert_clear(missing.stderr, MISSING["az"], "does not exist")


def test_the_cli_exits_5_or_2_with_one_line(
    database_url: str, moto_endpoint: str, checking_server: str, tmp_path: Path
) -> None:
    core.connect(database_url, tmp_path / "blobs").close()  # the catalog exists
    missing = orchestrator(database_url, "s3://no-such-bucket-here/p", "tags")
    assert missing.returncode == 5
    assert_clear(missing.stderr, "s3://no-such-bucket-here/p", "does not exist")
    env_denied = {**os.environ, "AWS_ENDPOINT_URL": checking_server}
    denied = subprocess.run(
        [ORCHESTRATOR, "--database-url", database_url, "--blob-root", "s3://any-bucket", "tags"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env_denied,
    )
    assert denied.returncode == 5
    assert_clear(denied.stderr, "s3://any-bucket", "access denied")
    malformed = orchestrator(database_url, "s3://Bad_Bucket/p", "tags")
    assert malformed.returncode == 2
    assert_clear(malformed.stderr, "s3://Bad_Bucket/p", "not a valid bucket")


def test_the_environment_variable_takes_an_url_too(
    database_url: str, s3_blob_root: str, tmp_path: Path
) -> None:
    env = {**os.environ, "ORCHESTRATOR_DATABASE_URL": database_url}
    env["ORCHESTRATOR_BLOB_ROOT"] = s3_blob_root
    (tmp_path / "dag.json").write_text('{"nodes": {"a": {"deps": []}}}')
    created = subprocess.run(
        [ORCHESTRATOR, "workflow", "create", str(tmp_path / "dag.json"), "--name", "etl"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert created.returncode == 0, created.stderr
    with core.connect(database_url, s3_blob_root) as catalog:
        assert catalog.workflows.get_workflow_by_tag("main")["nodes"] == {"a": {"deps": []}}


def test_http_answers_503_when_the_store_goes_away(database_url: str, tmp_path: Path) -> None:
    with moto_server(tmp_path / "moto.log") as endpoint, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", endpoint)
        bucket = new_bucket(endpoint)
        catalog = core.connect(database_url, f"s3://{bucket}/blobs")
        cas_id = catalog.cas.store_content(b"served until the store went away")
    try:
        with TestClient(create_app(catalog), raise_server_exceptions=False) as client:
            response = client.get(f"/blobs/{cas_id}")
        assert response.status_code == 503
        assert response.json()["error"]["type"] == "unavailable"
        assert_clear(response.json()["error"]["message"], f"s3://{bucket}/blobs", "reached")
    finally:
        catalog.close()


@dg.asset
def orders() -> list[int]:
    return [1, 2]


def test_a_dagster_run_fails_with_the_message(database_url: str, scheme: str) -> None:
    url = MISSING[scheme]
    orchestrator = OrchestratorResource(database_url=database_url, blob_root=url)
    resources = {
        "orchestrator": orchestrator,
        "io_manager": VersionedIOManager(orchestrator=orchestrator),
    }
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [orders], resources=resources, instance=instance, raise_on_error=False
        )
    assert not result.success
    failures = [e for e in result.all_events if e.is_failure]
    messages = []
    for event in failures:
        error = event.event_specific_data.error if event.event_specific_data else None
        while error is not None:
            messages.append(error.message)
            error = error.cause
    assert any(url in m and "does not exist" in m for m in messages), messages


@pytest.mark.slow
def test_orchestrator_serve_takes_an_url(
    database_url: str, s3_blob_root: str, tmp_path: Path
) -> None:
    """``orchestrator serve`` on ``ORCHESTRATOR_BLOB_ROOT=s3://...``: a workflow created over
    HTTP has its document in the bucket, served back verified."""
    import httpx

    from tests.http.server import serve

    with serve(database_url, s3_blob_root, tmp_path / "server.log") as base:  # type: ignore[arg-type]
        dag = {"nodes": {"orders": {"deps": []}}}
        created = httpx.post(f"{base}/workflows", json={"name": "sales", "dag": dag})
        assert created.status_code == 201, created.text
        cas_id = created.json()["cas_id"]
        blob = httpx.get(f"{base}/blobs/{cas_id}")
        assert blob.status_code == 200
        assert json.loads(blob.content)["nodes"] == dag["nodes"]
    with core.connect(database_url, s3_blob_root) as catalog:
        assert cas_id in raw_blobs(catalog).ids()
