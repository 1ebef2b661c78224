"""The HTTP API: route registration, one module per resource, as in the seed."""

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

import core
from core.handlers import errors
from core.routes import artifact, blob, policy, run, step, tag, workflow


def create_app(catalog: core.Services) -> FastAPI:
    """An ASGI app serving ``catalog`` (FastAPI; OpenAPI at ``/openapi.json``). As it
    stops, it writes the reads that served steps noted and no commit carried."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        catalog.assets.flush_reads()

    app = FastAPI(
        lifespan=lifespan,
        title="orchestrator",
        version="0.1.0",
        description="Versioned DAG catalog: workflows, runs, tags, artifacts and blobs.",
    )
    errors.install(app)
    for module in (workflow, run, step, tag, policy, artifact, blob):
        app.include_router(module.router(catalog))
    return app
