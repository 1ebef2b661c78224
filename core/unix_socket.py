"""Unix sockets, as a served catalog listens on them."""

import os
import socket


def socket_answers(path: str | os.PathLike[str]) -> bool:
    """Whether a server listens on the unix socket at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True
