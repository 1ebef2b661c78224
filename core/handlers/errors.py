"""Domain errors as HTTP responses: a status, a JSON body, never a traceback."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

import core
from core.handlers.schemas import ErrorBody, ErrorDetail
from core.identifiers import CAS_ID_PATTERN

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
STATUSES: list[tuple[type[core.OrchestratorError], int, str]] = [
    (core.NotFoundError, 404, "not_found"),
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
        kind = "not_found" if error.status_code == 404 else "http"
        return error_response(
            error.status_code,
            ErrorDetail(type=kind, message=str(error.detail)),
            getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error serving %s", request.url.path)
        return error_response(500, ErrorDetail(type="internal", message="internal error"))
