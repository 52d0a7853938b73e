"""The requests a trainer sends all the time, served without FastAPI's dependency solving.

An epoch POST and a heartbeat are most of a busy hub's requests, and each does little: find the
caller, read a small JSON body, hand it to a service. FastAPI's route handling around that (the
request's exit stack, solving the dependency tree, its exception wrapper) cost about 0.1 ms per
request, a quarter of a heartbeat (docs/performance.md, "Lean routes").

An endpoint marked `@lean` is also served by a `LeanRoute`, placed ahead of every FastAPI route
by `install`. It matches the same method and path, finds the caller with the same dependency
functions (`deps.optional_user`, `deps.require_user`) and calls the same endpoint function. Its
errors go through the app's exception handlers as any route's do. The FastAPI route stays: it
is what the OpenAPI document and the route inventory describe, and it answers any method the
lean route does not take. `LeanRoute` refuses, at start-up, an endpoint that needs anything but
its path parameters, the caller, the request and the response, so a dependency added to such an
endpoint later cannot be skipped silently.
"""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette._utils import get_route_path
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, NoMatchFound, compile_path
from starlette.types import Receive, Scope, Send

from trainhub.server.deps import optional_user, require_user

LEAN_ENDPOINTS: set[Callable[..., Any]] = set()
F = TypeVar("F", bound=Callable[..., Any])


def lean(endpoint: F) -> F:
    """Mark an endpoint to be served by a `LeanRoute` too (see the module's docstring)."""
    LEAN_ENDPOINTS.add(endpoint)
    return endpoint


class LeanRoute(BaseRoute):
    """Serve an API route's endpoint whose only dependency is the caller (`deps.CurrentUser`)."""

    def __init__(self, path: str, route: APIRoute, dependant: Dependant) -> None:
        needs = [d.call for d in dependant.dependencies]
        extra = (
            dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.background_tasks_param_name
        )
        if needs != [require_user] or extra or not dependant.request_param_name:
            raise TypeError(
                f"{path}: a lean endpoint takes only path parameters, the caller "
                "(CurrentUser), the request and the response"
            )
        self.path = path
        self.endpoint = route.endpoint
        self.methods = route.methods or set()
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self._user = str(dependant.dependencies[0].name)
        self._request = dependant.request_param_name
        self._response = dependant.response_param_name

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["method"] not in self.methods:
            return Match.NONE, {}
        found = self.path_regex.match(get_route_path(scope))
        if found is None:
            return Match.NONE, {}
        params = {
            key: self.param_convertors[key].convert(value)
            for key, value in found.groupdict().items()
        }
        return Match.FULL, {"endpoint": self.endpoint, "path_params": params, "route": self}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # the FastAPI route builds the URLs

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = Response()  # collects the headers the caller's checks set (rate limits)
        del response.headers["content-length"]  # as FastAPI's: not a header of the answer
        user = await require_user(await optional_user(request, response))
        arguments: dict[str, Any] = {**scope["path_params"], self._user: user}
        arguments[str(self._request)] = request
        if self._response:
            arguments[self._response] = response
        answer: Response = await self.endpoint(**arguments)
        await answer(scope, receive, send)


def install(app: FastAPI) -> None:
    """Put a `LeanRoute` ahead of every route for each endpoint marked `@lean`.

    The routes are found as a request reaches them (FastAPI keeps included routers as nodes of
    `app.routes`), with their full path and every dependency, the included routers' own too.
    """
    lean_routes = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and route.endpoint in LEAN_ENDPOINTS:
            dependant = getattr(context, "dependant", route.dependant)
            lean_routes.append(LeanRoute(str(context.path), route, dependant))
    app.router.routes[:0] = lean_routes
