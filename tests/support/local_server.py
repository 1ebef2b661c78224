"""Test servers on loopback: a free port, and a server process run until a block ends."""

import contextlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

STARTUP_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(
    name: str, args: Sequence[str], log: Path, probe: str, env: Mapping[str, str] | None = None
) -> Iterator[None]:
    """Run ``args`` (output appended to ``log``) until the block ends, entered once a GET
    of ``probe`` gets an HTTP answer, any status; ``name`` says which server failed."""
    with log.open("ab") as output:
        server = subprocess.Popen(
            args, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    try:
        _wait_until_it_answers(name, probe, server)
        yield
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _wait_until_it_answers(name: str, probe: str, server: "subprocess.Popen[bytes]") -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(probe, timeout=2):
                return
        except urllib.error.HTTPError:  # it answered (refusing, say, an unsigned request)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if server.poll() is not None:
                raise RuntimeError(f"{name} exited with status {server.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} at {probe} did not answer in {STARTUP_SECONDS} s"
                ) from None
            time.sleep(0.1)
