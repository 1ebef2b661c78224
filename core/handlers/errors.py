"""Domain errors as HTTP responses: a status, a JSON body, never a traceback.

Every request gets an answer: a request whose transaction the database dropped before it
committed (``TransactionLostError``: nothing was kept) is served again, up to
``TRANSACTION_ATTEMPTS`` times, then answered 503 with ``Retry-After``; an unexpected
error is a 500 answered here, so the server keeps the client's connection open.
"""

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import core
from core.errors import TransactionLostError
from core.handlers.schemas import ConflictOut, ErrorBody, ErrorDetail
from core.identifiers import CAS_ID_PATTERN

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
TRANSACTION_ATTEMPTS = 3
"""How often a request is served when the database drops its transaction before commit."""
STATUSES: list[tuple[type[core.OrchestratorError], int, str]] = [
    (core.NotFoundError, 404, "not_found"),
    (core.PolicyError, 403, "policy"),  # a ConflictError: before it
    (core.ConflictError, 409, "conflict"),
    (core.ValidationError, 422, "validation"),
    (core.StorageBusyError, 503, "busy"),
    (core.StorageUnavailableError, 503, "unavailable"),
    (core.IntegrityError, 500, "integrity"),
]


class TagConflict(core.ConflictError):
    """A conflict on a tag, carrying the tag's current target and revision."""

    def __init__(self, message: str, current: core.Tag | None) -> None:
        super().__init__(message)
        self.current = current


def error_response(
    status: int, detail: ErrorDetail, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(ErrorBody(error=detail).model_dump(mode="json"), status, headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn errors into responses."""

    @app.exception_handler(core.OrchestratorError)
    async def domain_error(request: Request, error: core.OrchestratorError) -> JSONResponse:
        status, kind = next((s, k) for cls, s, k in STATUSES if isinstance(error, cls))
        detail = ErrorDetail(type=kind, message=str(error))
        if isinstance(error, TagConflict) and error.current is not None:
            detail.current_target = str(error.current.target_id)
            detail.current_revision = error.current.revision
        if isinstance(error, core.PolicyError):
            detail.tag, detail.pattern = error.tag, error.pattern
        if isinstance(error, core.MergeConflictError):
            detail.conflicts = ConflictOut.all(error.conflicts)
        if isinstance(error, core.IntegrityError):  # its message names server paths: log it
            log.error("integrity failure serving %s: %s", request.url.path, error)
            blobs = ", ".join(dict.fromkeys(CAS_ID_PATTERN.findall(str(error)))) or "a blob"
            detail.message = (
                f"stored bytes of {blobs} failed verification on the server (see its log; "
                "`orchestrator verify` lists every problem)"
            )
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return error_response(status, detail, headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        field = ".".join(str(part) for part in first.get("loc", ())) or None
        value = first.get("input")
        detail = ErrorDetail(
            type="validation",
            message=f"{field or 'request'}: {first.get('msg', 'invalid')}",
            field=field,
            value=value if isinstance(value, str | int | float | bool) else None,
        )
        return error_response(422, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = "no_route" if error.status_code == 404 else "http"  # handlers never raise it
        return error_response(
            error.status_code,
            ErrorDetail(type=kind, message=str(error.detail)),
            getattr(error, "headers", None),
        )

    app.add_middleware(InternalErrors)


class RetryingRoute(APIRoute):
    """A route that serves a request again when the database dropped its transaction
    before it committed (nothing was kept, so running it again is what the 503 would ask
    the client to do); after ``TRANSACTION_ATTEMPTS`` the 503 is answered."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        serve = super().get_route_handler()

        async def retrying(request: Request) -> Response:
            for attempt in range(1, TRANSACTION_ATTEMPTS):
                try:
                    return await serve(request)
                except TransactionLostError as error:
                    log.warning(
                        "serving %s again (attempt %d): %s", request.url.path, attempt, error
                    )
            return await serve(request)

        return retrying


class InternalErrors:
    """Answers an unexpected error with a 500 JSON error, logged with its traceback.

    Registered as the handler of ``Exception`` it would run in Starlette's outermost
    middleware, which raises the error again after answering; uvicorn then closes the
    connection, and the client's next request on it gets no answer at all.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            return  # the client went away before its request ended: nobody to answer
        except Exception:
            if started:  # an answer cut short: only closing the connection can say so
                raise
            log.exception("unexpected error serving %s", scope.get("path"))
            response = error_response(500, ErrorDetail(type="internal", message="internal error"))
            await response(scope, receive, send)
