"""Routes: /blobs."""

from typing import Annotated

from fastapi import APIRouter, Header, Response

import core
from core.handlers.blob import BlobHandler
from core.handlers.errors import RetryingRoute
from core.handlers.schemas import ERROR_RESPONSES
from core.routes.headers import IfNoneMatchHeader


def router(catalog: core.Services) -> APIRouter:
    handler = BlobHandler(catalog)
    routes = APIRouter(
        prefix="/blobs", tags=["blobs"], responses=ERROR_RESPONSES, route_class=RetryingRoute
    )

    @routes.get(
        "/{cas_id}",
        summary="A blob's verified bytes (ETag = cas id, immutable, Range supported)",
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "The bytes"},
            206: {"content": {"application/octet-stream": {}}, "description": "A byte range"},
            304: {"description": "Not modified"},
            416: {"description": "Range not satisfiable"},
        },
    )
    def get_blob(
        cas_id: str,
        if_none_match: IfNoneMatchHeader,
        range_header: Annotated[str | None, Header(alias="Range")] = None,
    ) -> Response:
        return handler.get(cas_id, range_header, if_none_match)

    @routes.head(
        "/{cas_id}",
        summary="The headers a GET would answer with (size, ETag, range), without the bytes",
        response_class=Response,
        responses={206: {"description": "A byte range"}, 304: {"description": "Not modified"}},
    )
    def head_blob(
        cas_id: str,
        if_none_match: IfNoneMatchHeader,
        range_header: Annotated[str | None, Header(alias="Range")] = None,
    ) -> Response:
        return handler.head(cas_id, range_header, if_none_match)

    return routes
