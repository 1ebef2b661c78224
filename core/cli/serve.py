"""``orchestrator serve``: the HTTP API (needs the ``http`` extra)."""

import click

from core.cli.app import EXIT_USAGE, CatalogContext, cli, domain_errors, pass_catalog


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@pass_catalog
@domain_errors
def serve(context: CatalogContext, host: str, port: int) -> None:
    """Serve the catalog over HTTP (OpenAPI at /openapi.json).

    \b
    Example:
      orchestrator serve --port 8000 &
      curl -s localhost:8000/tags/main/history
    """
    try:
        import uvicorn

        from core.routes import create_app
    except ImportError as exc:
        click.echo(
            f"error: {exc.name} is missing: pip install 'orchestrator-catalog[http]'", err=True
        )
        raise SystemExit(EXIT_USAGE) from None
    uvicorn.run(create_app(context.serving), host=host, port=port, log_level="info")
