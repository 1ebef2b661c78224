"""An Azure Blob API on loopback for the tests: Azurite (npm ``azurite``, which ``.ci/run``
installs into ``.ci/node_modules``) in a process of its own, with the emulator's
well-known account ``devstoreaccount1``, and a fresh container per test."""

import base64
import contextlib
import hashlib
import hmac
import shutil
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

from tests.support.local_server import free_port, serving

ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
"""The emulator's published development key (the same in every Azurite)."""
_CHECKOUT = Path(__file__).resolve().parents[2]


def azurite_command() -> str | None:
    """``azurite-blob`` from ``.ci/node_modules`` (``.ci/run`` installs it), else on PATH."""
    local = _CHECKOUT / ".ci" / "node_modules" / ".bin" / "azurite-blob"
    return str(local) if local.exists() else shutil.which("azurite-blob")


def emulator_environment(endpoint: str) -> dict[str, str]:
    """What points obstore's Azure store at the emulator (its standard variables)."""
    return {"AZURE_STORAGE_USE_EMULATOR": "true", "AZURITE_BLOB_STORAGE_URL": endpoint}


@contextlib.contextmanager
def azurite_server(command: str, log: Path) -> Iterator[str]:
    """Azurite's blob service, in memory, on a free loopback port until the block ends;
    its endpoint URL (``http://127.0.0.1:PORT``). Telemetry is off: nothing leaves
    loopback."""
    port = free_port()
    args = [command, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence"]
    args += ["--disableTelemetry", "--skipApiVersionCheck", "--silent"]
    endpoint = f"http://127.0.0.1:{port}"
    with serving("azurite", args, log, f"{endpoint}/{ACCOUNT}?comp=list"):
        yield endpoint


def new_container(endpoint: str) -> str:
    """A fresh, empty container's name (a Create Container request signed with the
    emulator's shared key)."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
    signed = "".join(f"{key}:{value}\n" for key, value in sorted(headers.items()))
    # VERB, then eleven standard headers (all empty here), then the x-ms-* headers and
    # the resource (path-style: the account is also the path's first segment)
    text = "PUT\n" + "\n" * 11 + signed + f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
    key = base64.b64decode(ACCOUNT_KEY)
    signature = base64.b64encode(hmac.new(key, text.encode(), hashlib.sha256).digest()).decode()
    request = urllib.request.Request(
        f"{endpoint}/{ACCOUNT}/{name}?restype=container",
        method="PUT",
        headers={**headers, "Authorization": f"SharedKey {ACCOUNT}:{signature}"},
    )
    with urllib.request.urlopen(request, timeout=10):
        return name
