"""Route dependencies for list headers: every field line read, not only the first."""

from typing import Annotated

from fastapi import Depends, Header, Request

from core.handlers.headers import combined


def _if_match(
    request: Request,
    if_match: Annotated[
        str | None, Header(description="Expected revision(s): compare-and-swap")
    ] = None,
) -> str | None:
    """All ``If-Match`` lines as one list (``if_match`` declares it in the OpenAPI document;
    FastAPI would give only one line)."""
    return combined(request.headers.getlist("if-match"))


def _if_none_match(
    request: Request,
    if_none_match: Annotated[str | None, Header(description="Cached ETag(s): 304 if any")] = None,
) -> str | None:
    """All ``If-None-Match`` lines as one list (see ``_if_match``)."""
    return combined(request.headers.getlist("if-none-match"))


IfMatchHeader = Annotated[str | None, Depends(_if_match)]
"""The ``If-Match`` header, every line of it (``None`` without one)."""
IfNoneMatchHeader = Annotated[str | None, Depends(_if_none_match)]
"""The ``If-None-Match`` header, every line of it (``None`` without one)."""
