"""Routes: /blobs (verified bytes, and the runs that produced and read them)."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response

import core
from core.handlers.blob import BlobHandler
from core.handlers.errors import RetryingRoute
from core.handlers.lineage import LineageHandler
from core.handlers.schemas import ERROR_RESPONSES, BlobLineageOut
from core.identifiers import MAX_LIMIT
from core.routes.headers import IfNoneMatchHeader


def router(catalog: core.Services) -> APIRouter:
    handler = BlobHandler(catalog)
    lineage = LineageHandler(catalog)
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

    @routes.get("/{cas_id}/lineage", summary="The runs that produced the blob and that read it")
    def get_lineage(
        cas_id: str,
        limit: Annotated[
            int, Query(ge=1, le=MAX_LIMIT, description="At most this many of each, oldest first")
        ] = 100,
    ) -> BlobLineageOut:
        return lineage.of_blob(cas_id, limit)

    return routes
