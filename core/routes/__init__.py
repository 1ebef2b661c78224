"""The HTTP API: route registration, one module per resource, as in the seed."""

from fastapi import FastAPI

import core
from core.handlers import errors
from core.routes import artifact, blob, policy, run, step, tag, workflow


def create_app(catalog: core.Services) -> FastAPI:
    """An ASGI app serving ``catalog`` (FastAPI; OpenAPI at ``/openapi.json``)."""
    app = FastAPI(
        title="orchestrator",
        version="0.1.0",
        description="Versioned DAG catalog: workflows, runs, tags, artifacts and blobs.",
    )
    errors.install(app)
    for module in (workflow, run, step, tag, policy, artifact, blob):
        app.include_router(module.router(catalog))
    return app
