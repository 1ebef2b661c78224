"""``orchestrator serve``: the HTTP API, on a port or a unix socket."""

import asyncio
from pathlib import Path

import click

from core.cli.app import CatalogContext, cli, domain_errors, pass_catalog
from core.unix_socket import listen_on, refuse_live_socket


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--unix-socket",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Listen on this unix socket instead (only its owner may connect); clients use "
    "http+unix://<the path, percent-encoded>.",
)
@click.option(
    "--idle-exit",
    type=click.FloatRange(min=0, min_open=True),
    help="Stop after this many seconds without a request (default: never).",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="What the server logs (info: every request).",
)
@pass_catalog
@domain_errors
def serve(
    context: CatalogContext,
    host: str,
    port: int,
    unix_socket: Path | None,
    idle_exit: float | None,
    log_level: str,
) -> None:
    """Serve the catalog over HTTP (OpenAPI at /openapi.json).

    \b
    Example:
      orchestrator serve --port 8000 &
      curl -s localhost:8000/tags/main/history
    """
    import uvicorn  # here: the other commands start without the web stack

    from core.routes import create_app
    from core.routes.serving import Activity, Server, stop_when_idle

    if unix_socket is not None:
        refuse_live_socket(unix_socket)  # before the catalog opens (a DuckDB file it would take)
    catalog = context.serving

    def withdrawn() -> None:  # the catalog's files were replaced: stop serving them
        if listening is not None:
            listening.withdraw()
        server.should_exit = True

    activity = Activity(create_app(catalog), catalog.local_files(), on_withdrawn=withdrawn)
    listening = None if unix_socket is None else listen_on(unix_socket)
    config = uvicorn.Config(activity, host=host, port=port, log_level=log_level)
    withdraw = None if listening is None else listening.withdraw
    server = Server(config, on_stop=withdraw or (lambda: None))

    async def run() -> None:
        watch = None
        if idle_exit is not None:
            watch = asyncio.create_task(stop_when_idle(server, activity, idle_exit, withdraw))
        try:
            await server.serve(sockets=None if listening is None else [listening.socket])
        finally:
            if watch is not None:
                watch.cancel()

    try:
        asyncio.run(run())
    finally:  # also when the server failed to start
        if withdraw is not None:
            withdraw()
