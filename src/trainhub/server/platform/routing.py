"""What the Platform endpoints share: their router, their errors, their bodies.

Errors keep the hub's one JSON shape and add the `error` field that ultralytics 8.4 shows its
user for `ul://` URIs (docs/protocol/platform.md §4.8, §9.1). Bodies go through the JSON gate
with the Platform's own size limit.
"""

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pydantic
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from trainhub.protocol.errors import ErrorBody
from trainhub.server.bodies import body_of
from trainhub.server.errors import HubError
from trainhub.server.settings import Settings

M = TypeVar("M", bound=pydantic.BaseModel)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return the hub's error shape with the Platform's `error` field beside `message`."""
    body = {**ErrorBody(message=message).model_dump(), "error": message}
    return JSONResponse(body, status_code=status, headers=headers)


class PlatformRoute(APIRoute):
    """A route whose domain errors are answered with `error` as well as `message`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except HubError as exc:
                return error_response(exc.status, exc.message, exc.headers)

        return route


def create_router() -> APIRouter:
    """Return a router for Platform endpoints (one tag in the API reference)."""
    return APIRouter(route_class=PlatformRoute, tags=["platform (ultralytics 8.4)"])


def _platform_limit(settings: Settings) -> int:
    return settings.platform_max_json_bytes


def platform_body(model: type[M]) -> Callable[[Request], Awaitable[M]]:
    """Return a dependency: a Platform JSON body (up to `platform_max_json_bytes`) as `model`."""
    return body_of(model, limit=_platform_limit)
