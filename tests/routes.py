"""The app's routes flattened across included routers, one entry per (method, path).

FastAPI 0.16x keeps included routers as nodes of `app.routes`; `iter_route_contexts` resolves
them to the routes a request can reach, with their effective path and dependency tree.
"""

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from trainhub.server.leanroutes import LeanRoute


@dataclass(frozen=True)
class Endpoint:
    """One method of one API route, as a request reaches it."""

    method: str
    path: str
    route: APIRoute
    endpoint: Callable[..., Any]
    dependant: Dependant

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)(?::\w+)?}", self.path)


def api_endpoints(app: FastAPI) -> list[Endpoint]:
    """Return every (method, path) of every APIRoute of `app`, in routing order."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute):
            continue
        dependant = getattr(context, "dependant", route.dependant)
        for method in sorted(context.methods or route.methods):
            found.append(Endpoint(method, str(context.path), route, context.endpoint, dependant))
    return found


def other_routes(app: FastAPI) -> set[str]:
    """Return the paths of the routes that are not APIRoutes (docs, static mounts).

    The lean routes are left out: each serves an APIRoute's endpoint, and
    test_route_inventory.py checks them against it.
    """
    return {
        str(context.path)
        for context in iter_route_contexts(app.routes)
        if not isinstance(context.original_route, APIRoute | LeanRoute)
    }


def dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Yield every callable in a dependency tree."""
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from dependency_calls(sub)
