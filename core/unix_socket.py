"""Unix sockets, as a served catalog listens on them."""

import contextlib
import os
import socket
from pathlib import Path

from core.errors import ConflictError, ValidationError

PROBE_TIMEOUT = 1.0
"""Seconds a probe waits to connect (a listener whose queue is full makes it wait)."""
BACKLOG = 2048
"""Connections a listening socket queues before the server accepts them (uvicorn's)."""


def socket_answers(path: str | os.PathLike[str]) -> bool:
    """Whether a server listens on the unix socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(PROBE_TIMEOUT)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def refuse_live_socket(path: Path) -> None:
    """A ``ConflictError`` if a server listens on ``path``."""
    if path.is_socket() and socket_answers(path):
        raise ConflictError(f"another server already listens on {path}")


class UnixListener:
    """A listening unix socket, and its removal (only while the path is still this one)."""

    def __init__(self, sock: socket.socket, path: Path) -> None:
        self.socket = sock
        self.path = path
        self._inode = path.stat().st_ino

    def withdraw(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_ino == self._inode:
                self.path.unlink()


def listen_on(path: Path) -> UnixListener:
    """A socket listening at ``path``, which only this user may connect to; a socket left
    there by a server that is gone is replaced, a live one is a ``ConflictError``. A
    client that connects from now on waits for the server, rather than being refused."""
    refuse_live_socket(path)
    with contextlib.suppress(FileNotFoundError):
        if path.is_socket():
            path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise ValidationError(f"cannot listen on {path}: {exc}") from exc
    finally:
        os.umask(umask)
    sock.listen(BACKLOG)
    return UnixListener(sock, path)
