"""A real `orchestrator serve` in a subprocess on a free loopback port, for HTTP tests."""

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from core.client import unix_server_url
from tests.support.local_server import free_port

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")
STARTUP_SECONDS = 60


@contextlib.contextmanager
def serve(
    database_url: str, blob_root: Path, log: Path, *, unix_socket: Path | None = None
) -> Iterator[str]:
    """Run ``orchestrator serve`` on the catalog (on a free loopback port, or on
    ``unix_socket``) until the block exits; yields its base URL.

    Its output goes to ``log`` (a pipe nobody reads would fill and stall the server)."""
    port = free_port()
    where = ["--port", str(port)] if unix_socket is None else ["--unix-socket", str(unix_socket)]
    env = {
        **os.environ,
        "ORCHESTRATOR_DATABASE_URL": database_url,
        "ORCHESTRATOR_BLOB_ROOT": str(blob_root),
    }
    with log.open("w") as output:
        server = subprocess.Popen(
            [ORCHESTRATOR, "serve", *where],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
        )
    if unix_socket is None:
        base, http = f"http://127.0.0.1:{port}", httpx.Client(base_url=f"http://127.0.0.1:{port}")
    else:
        base = unix_server_url(str(unix_socket))
        http = httpx.Client(
            base_url="http://local", transport=httpx.HTTPTransport(uds=str(unix_socket))
        )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if http.get("/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"server did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield base
    finally:
        http.close()
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[tuple[str, int]]:
    """Serve an ASGI ``app`` with uvicorn (as ``orchestrator serve`` does) in a thread of
    this process, on a free loopback port; yields its (host, port)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        yield "127.0.0.1", port
    finally:
        server.should_exit = True
        thread.join(timeout=20)
