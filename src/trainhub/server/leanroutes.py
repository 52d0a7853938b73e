"""The requests a trainer sends all the time, served without FastAPI's dependency solving.

An epoch POST and a heartbeat are most of a busy hub's requests, and each does little: find the
caller, read a small JSON body, hand it to a service. FastAPI's route handling around that (the
request's exit stack, solving the dependency tree, its exception wrapper) cost about 0.1 ms per
request, a quarter of a heartbeat (docs/performance.md, "Lean routes").

An endpoint marked `@lean` is also served by a `LeanRoute`, placed ahead of every FastAPI route
by `include_routers`. It matches the same method and path, finds the caller with the same
dependency functions (`deps.optional_user`, `deps.require_user`) and calls the same endpoint
function. Its errors go through the app's exception handlers as any route's do. The FastAPI
route stays: it is what the OpenAPI document and the route inventory describe, and it answers
any method the lean route does not take. `LeanRoute` refuses, at start-up, an endpoint that
needs anything but its path parameters, the caller, the request and the response, so a
dependency added to such an endpoint later cannot be skipped silently.
"""

import inspect
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
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

    def __init__(
        self, path: str, route: APIRoute, dependant: Dependant, max_body_size: int | None = None
    ) -> None:
        needs = [d.call for d in dependant.dependencies]
        extra = (
            dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.background_tasks_param_name
        )
        plain_path = all(
            field.field_info.annotation is str
            and not field.field_info.metadata
            and field.alias == field.name
            for field in dependant.path_params
        )
        if (
            needs != [require_user]
            or extra
            or not plain_path
            or not dependant.request_param_name
            or not inspect.iscoroutinefunction(route.endpoint)
            or max_body_size is not None
        ):
            raise TypeError(
                f"{path}: a lean endpoint is an async function that takes only plain str path "
                "parameters, the caller (CurrentUser), the request and the response, on a route "
                "without a body size of its own"
            )
        self.path = path
        self.endpoint = route.endpoint
        self.methods = route.methods or set()
        self.path_regex, self.path_format, self.param_convertors = compile_path(path)
        self._user = str(dependant.dependencies[0].name)
        self._request = str(dependant.request_param_name)  # checked above: there is one
        self._response = dependant.response_param_name

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Match the route's methods and path only: any other method goes on to FastAPI's.

        An app whose dependencies are overridden (tests do that) is left to FastAPI's route too,
        which applies the overrides.
        """
        if scope["type"] != "http" or scope["method"] not in self.methods:
            return Match.NONE, {}
        if getattr(scope.get("app"), "dependency_overrides", None):
            return Match.NONE, {}
        found = self.path_regex.match(_route_path(scope))
        if found is None:
            return Match.NONE, {}
        params = {
            key: self.param_convertors[key].convert(value)
            for key, value in found.groupdict().items()
        }
        return Match.FULL, {"endpoint": self.endpoint, "path_params": params, "route": self}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        """Build no URL: the FastAPI route of the same endpoint builds them."""
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Find the caller, call the endpoint, send its answer; errors go to the app's handlers."""
        request = Request(scope, receive, send)
        response = Response()  # collects the headers the caller's checks set (rate limits)
        del response.headers["content-length"]  # as FastAPI's: not a header of the answer
        user = await require_user(await optional_user(request, response))
        arguments: dict[str, Any] = {
            **scope["path_params"],
            self._user: user,
            self._request: request,
        }
        if self._response:
            arguments[self._response] = response
        answer: Response = await self.endpoint(**arguments)
        await answer(scope, receive, send)


def include_routers(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Include each router in `app` as it is, with a `LeanRoute` ahead of them all for each
    endpoint among them marked `@lean`.

    The routers are included with no prefix and no dependencies of the inclusion, so their
    lean routes are the same for every app, and are found once per process (`lean_routes`):
    a router must hold all its routes, and its endpoints be marked, before it is first given
    here (as a module's router is once imported). An app with dependencies of its own is
    refused: a lean route would not run them.
    """
    if app.router.dependencies:
        raise TypeError("lean routes do not run an app's own dependencies: give them to routes")
    for router in routers:
        app.include_router(router)
    key = tuple(map(id, routers))  # routers compare by value and have no hash
    if key not in _FOUND:
        _FOUND[key] = (tuple(routers), lean_routes(routers))  # the routers kept: ids stay theirs
    app.router.routes[:0] = _FOUND[key][1]


# the lean routes of each list of routers `include_routers` was given, by the routers' ids
_FOUND: dict[tuple[int, ...], tuple[tuple[APIRouter, ...], list[LeanRoute]]] = {}


def lean_routes(routers: Sequence[APIRouter]) -> list[LeanRoute]:
    """Return a `LeanRoute` for each endpoint marked `@lean` in `routers`, as `include_routers`
    includes them.

    The routes are found as a request reaches them (FastAPI keeps included routers as nodes of
    an app's routes), with their full path and every dependency, the included routers' own too,
    in an app of their own. Finding them builds every route's dependencies and response model,
    about 40 ms of CPU (docs/performance.md, "The suite on the Intel VM, again"), so
    `include_routers` does it once per process, not for every app: the test suite builds about
    1,300. A lean route holds nothing of an app's. A lean route that would also take another
    route's requests (a literal path its parameter matches, with a method in common) is
    refused: it would shadow that route.
    """
    probe = FastAPI()
    for router in routers:
        probe.include_router(router)
    routes: list[tuple[str, set[str], APIRoute, Dependant, int | None]] = []
    for context in iter_route_contexts(probe.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            dependant: Dependant = getattr(context, "dependant", None) or route.dependant
            size = getattr(context, "max_body_size", None) or route.max_body_size
            methods = set(context.methods or route.methods or ())
            routes.append((str(context.path), methods, route, dependant, size))
    lean = [
        LeanRoute(path, route, dependant, size)
        for path, _, route, dependant, size in routes
        if route.endpoint in LEAN_ENDPOINTS
    ]
    for lean_route in lean:
        for path, methods, *_ in routes:
            if (
                path != lean_route.path
                and methods & lean_route.methods
                and lean_route.path_regex.match(path)
            ):
                raise TypeError(f"the lean route {lean_route.path} would shadow {path}")
    return lean


def _route_path(scope: Scope) -> str:
    """Return the path below the app's root_path (as Starlette's routing matches it)."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path) and path != root_path:
        if path[len(root_path)] == "/":
            return path[len(root_path) :]
    elif root_path and path == root_path:
        return ""
    return path
