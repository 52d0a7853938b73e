"""Domain errors of the server and the handlers that render them as ErrorBody JSON.

Routes raise these (never HTTPException with literal strings); `install_handlers` turns them,
and every framework error, into `{"success": false, "message": ...}` with the right status. A
StorageError (disk full, bucket unreachable) is a 503 that the clients retry.
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from trainhub.protocol.errors import ErrorBody
from trainhub.server.storage.base import StorageError

logger = logging.getLogger(__name__)


class HubError(Exception):
    """An error with an HTTP status and a message that says what to do."""

    status = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequestError(HubError):
    status = 400


class NotAuthenticatedError(HubError):
    status = 401


class ForbiddenError(HubError):
    status = 403


class NotFoundError(HubError):
    status = 404

    def __init__(self, kind: str, object_id: str) -> None:
        shown = object_id if len(object_id) <= 40 else object_id[:40] + "..."
        super().__init__(f"{kind} {shown!r} not found; check the id and that it belongs to you")


class ConflictError(HubError):
    status = 409


class PayloadTooLargeError(HubError):
    status = 413


class UnsupportedMediaTypeError(HubError):
    status = 415


class ValidationError(HubError):
    status = 422


class RateLimitedError(HubError):
    status = 429


class RequestTimeoutError(HubError):
    status = 408


class ServiceUnavailableError(HubError):
    """Worth retrying later: the hub is busy, its database or workers do not answer in time,
    or no worker runs (Retry-After says when)."""

    status = 503


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Return the one JSON error shape with `status`."""
    return JSONResponse(
        ErrorBody(message=message).model_dump(), status_code=status, headers=headers
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def install_handlers(app: FastAPI) -> None:
    """Render every error as ErrorBody JSON, including 404/405 of unknown routes and crashes."""

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, _describe_validation(exc))

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> JSONResponse:
        # the message names paths, buckets or endpoints: it goes to the log, not to the caller
        logger.error("storage failed on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "the server's storage is unavailable; try again later (the server log has why)"
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {
            404: f"no route {request.url.path!r}; see /docs for the API",
            405: f"method {request.method} is not allowed on {request.url.path!r}",
        }
        return error_response(
            exc.status_code, message.get(exc.status_code, str(exc.detail)), dict(exc.headers or {})
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # locked, unreachable or restarting: the clients retry a 503, and nothing was answered
        # as stored. Programming errors still surface: they are not connection errors.
        if (
            not isinstance(exc, OperationalError | InterfaceError)
            and not exc.connection_invalidated
        ):
            logger.exception("database error on %s %s", request.method, request.url.path)
            return error_response(500, "internal error; the server log has the details")
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "the database is unavailable; try again shortly", {"Retry-After": "1"}
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # the client closed the connection mid-body: nothing was stored and nobody reads this
        logger.info("client left during %s %s", request.method, request.url.path)
        return error_response(400, "the client disconnected before the request body ended")

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")
