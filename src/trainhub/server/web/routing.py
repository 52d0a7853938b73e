"""The route class of the dashboard: sign-in redirects, and errors as pages in the same style.

The API keeps its JSON ErrorBody for every error. Only routes made with `create_router()` turn a
HubError into an HTML page, and only for requests that accept HTML (a browser navigating); a
script calling a dashboard data endpoint still gets the JSON shape.
"""

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from trainhub.server.errors import HubError, error_response
from trainhub.server.web.auth import SignInRequired, session_user
from trainhub.server.web.render import render

TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    413: "Too large",
    422: "Not accepted",
    429: "Too many requests",
}


def accepts_html(request: Request) -> bool:
    """Tell whether the caller is a browser navigating (it asks for HTML)."""
    return "text/html" in request.headers.get("accept", "")


def safe_next(target: str | None) -> str:
    """Return `target` if it is a path on this site, else "/" (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def see_other(path: str) -> RedirectResponse:
    """Redirect after a POST to the page at `path` (303, so the browser GETs it)."""
    return RedirectResponse(path, status_code=303)


def to_login(request: Request) -> Response:
    """Send the browser to the sign-in page, then back here."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/login" + (f"?next={quote(here, safe='')}" if request.method == "GET" else "")
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return see_other(target)


def render_error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    """Render an error page in the dashboard's style (with the error's headers: Retry-After)."""
    user = session_user(request)
    title = TITLES.get(status, "Something went wrong")
    return render(
        request, "error.html", user, status=status, headers=headers, title=title, message=message
    )


def _describe(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
    return f"{where or 'request'}: {first.get('msg', 'invalid value')}"


class PageRoute(APIRoute):
    """A dashboard route: redirects to sign-in and renders errors as pages."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired as exc:
                if accepts_html(request) or request.headers.get("hx-request"):
                    return to_login(request)
                return error_response(exc.status, exc.message)
            except HubError as exc:
                if not accepts_html(request):
                    raise
                return await run_in_threadpool(
                    render_error, request, exc.status, exc.message, exc.headers
                )
            except RequestValidationError as exc:
                if not accepts_html(request):
                    raise
                return await run_in_threadpool(render_error, request, 400, _describe(exc))

        return page_handler


def create_router() -> APIRouter:
    """Return a router for dashboard routes (kept out of the API's OpenAPI description)."""
    return APIRouter(route_class=PageRoute, include_in_schema=False)
