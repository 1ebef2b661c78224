"""How ``orchestrator serve`` runs: ``Server`` calls back as it stops, ``Activity`` notes
its requests, ``stop_when_idle`` stops it after a quiet spell."""

import asyncio
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

UNLINKED_GRACE = 2.0
"""Seconds an idle server goes on answering after it removed its socket: a client that
connected just before may still send a request; the server stops once none came."""
CHECK_EVERY = 1.0
"""Seconds between two looks at how long the server has been idle (at most)."""


class Stoppable(Protocol):
    should_exit: bool


class Server(uvicorn.Server):
    """A uvicorn server that calls ``on_stop`` once it has stopped serving, on a signal
    too (uvicorn raises a signal it caught again after its shutdown, which ends the
    process before any code after ``serve`` runs)."""

    def __init__(self, config: uvicorn.Config, on_stop: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_stop = on_stop

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().shutdown(sockets)
        finally:
            self._on_stop()


class Activity:
    """ASGI middleware noting the HTTP requests in hand and when the last one ended. With
    ``files``, a request that finds one of them replaced or removed since the server
    started (``rm -rf`` of a catalog, then a new one at the same path) is answered 503
    ``withdrawn``, and ``on_withdrawn`` is called: the server must not write on into the
    files it still holds open."""

    def __init__(
        self,
        app: ASGIApp,
        files: Sequence[Path] = (),
        on_withdrawn: Callable[[], None] = lambda: None,
    ) -> None:
        self.app = app
        self.requests = 0
        self.in_hand = 0
        self.last_ended = time.monotonic()
        self._files = {path: _identity(path) for path in files}
        self._on_withdrawn = on_withdrawn

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if replaced := self._replaced():
            self._on_withdrawn()
            await JSONResponse(
                {"error": {"type": "withdrawn", "message": f"{replaced} changed under the server"}},
                status_code=503,
            )(scope, receive, send)
            return
        self.requests += 1
        self.in_hand += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_hand -= 1
            self.last_ended = time.monotonic()

    def _replaced(self) -> Path | None:
        """The first of the catalog's files that is no longer the one the server opened
        (one that did not exist then may appear)."""
        for path, opened in self._files.items():
            if opened is not None and _identity(path) != opened:
                return path
        return None

    def idle_for(self) -> float:
        """Seconds since the last request ended; 0 while one is in hand."""
        return 0.0 if self.in_hand else time.monotonic() - self.last_ended


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


async def stop_when_idle(
    server: Stoppable,
    activity: Activity,
    idle: float,
    withdraw: Callable[[], None] | None = None,
) -> None:
    """Stop ``server`` once ``activity`` has been idle for ``idle`` seconds. A server on a
    unix socket first calls ``withdraw`` (which removes the socket), so that new clients
    find no server rather than one that is stopping, then stops when no request came for
    ``UNLINKED_GRACE`` seconds."""
    while activity.idle_for() < idle:
        await asyncio.sleep(min(CHECK_EVERY, max(idle - activity.idle_for(), 0.01)))
    if withdraw is not None:
        withdraw()
        seen = -1
        while seen != activity.requests or activity.in_hand:
            seen = activity.requests
            await asyncio.sleep(UNLINKED_GRACE)
    server.should_exit = True
