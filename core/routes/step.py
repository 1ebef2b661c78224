"""Routes: /steps, what a run's step processes ask of a served catalog (the
``VersionedIOManager`` of an ``OrchestratorResource`` with a ``server_url``)."""

import tempfile
from collections.abc import Callable
from typing import Annotated, BinaryIO, TypeVar

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

import core
from core.errors import TransactionLostError
from core.handlers.errors import RetryingRoute
from core.handlers.schemas import (
    ERROR_RESPONSES,
    InputQuery,
    NodeValueOut,
    OpOutputCommitQuery,
    OpOutputQuery,
    OutputCommitOut,
    OutputQuery,
    PinIn,
    PinOut,
)
from core.handlers.step import StepHandler
from core.service.asset import LARGE_VALUE

Committed = TypeVar("Committed", OutputCommitOut, NodeValueOut)
Where = TypeVar("Where", OutputQuery, OpOutputCommitQuery)
BYTES_BODY = {"content": {"application/octet-stream": {}}, "required": True}


def router(catalog: core.Services) -> APIRouter:
    handler = StepHandler(catalog)
    routes = APIRouter(
        prefix="/steps", tags=["steps"], responses=ERROR_RESPONSES, route_class=RetryingRoute
    )

    @routes.post("/pin", summary="Pin a run to its tag's version (once; later calls check it)")
    def pin(body: PinIn) -> PinOut:
        return handler.pin(body)

    @routes.post(
        "/outputs",
        summary="Commit an asset output (the body is its bytes): a new version on the tag, "
        "or on the run's staged head",
        openapi_extra={"requestBody": BYTES_BODY},
    )
    async def commit_output(
        request: Request, query: Annotated[OutputQuery, Query()]
    ) -> OutputCommitOut:
        return await _committed(request, handler.commit_output, query)

    @routes.post(
        "/op-outputs",
        summary="Store an op's output (the body is its bytes) for its run alone",
        openapi_extra={"requestBody": BYTES_BODY},
    )
    async def commit_op_output(
        request: Request, query: Annotated[OpOutputCommitQuery, Query()]
    ) -> NodeValueOut:
        return await _committed(request, handler.commit_op_output, query)

    @routes.get("/inputs", summary="Where an asset input's value is, as of the run's pin")
    def locate_input(query: Annotated[InputQuery, Query()]) -> NodeValueOut:
        return handler.locate_input(query)

    @routes.get("/op-outputs", summary="Where an op output of a run is")
    def locate_op_output(query: Annotated[OpOutputQuery, Query()]) -> NodeValueOut:
        return handler.locate_op_output(query)

    @routes.post(
        "/reads", status_code=204, summary="Write the reads of a run noted since its last commit"
    )
    def flush_reads(run_id: Annotated[str, Query()]) -> None:
        handler.flush_reads(run_id)

    return routes


async def _committed(
    request: Request,
    commit: Callable[[Where, bytes | BinaryIO], Committed],
    query: Where,
) -> Committed:
    """``commit`` of the request's body, in a worker thread. A lost transaction keeps the
    body for the request's next attempt (after the last attempt a spilled body is closed
    when collected); otherwise a spilled body is closed here."""
    body = await _received(request)
    try:
        committed = await run_in_threadpool(commit, query, body)
    except TransactionLostError:
        raise
    except BaseException:
        _discard(body)
        raise
    _discard(body)
    return committed


def _discard(body: bytes | BinaryIO) -> None:
    if not isinstance(body, bytes):
        body.close()


async def _received(request: Request) -> bytes | BinaryIO:
    """The request's body: bytes below ``LARGE_VALUE``, else a temporary file at its start.
    Kept on the request, so a request served again (``RetryingRoute``) reads it again."""
    kept: bytes | BinaryIO | None = getattr(request.state, "body", None)
    if kept is None:
        kept = await _spool(request)
        request.state.body = kept
    if not isinstance(kept, bytes):
        kept.seek(0)
    return kept


async def _spool(request: Request) -> bytes | BinaryIO:
    """The whole body, or nothing: a client that goes away before its body ends (a step
    process killed while it sends) leaves no temporary file and commits nothing."""
    buffer = bytearray()
    spilled: BinaryIO | None = None
    try:
        async for chunk in request.stream():
            if spilled is None and len(buffer) + len(chunk) < LARGE_VALUE:
                buffer += chunk
                continue
            if spilled is None:
                spilled = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _committed)
                spilled.write(buffer)
            spilled.write(chunk)
    except BaseException:
        if spilled is not None:
            spilled.close()
        raise
    return bytes(buffer) if spilled is None else spilled
