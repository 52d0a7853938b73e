"""Every route declares who may call it (docs/security.md §2.2): a key, a session, or `public`.

MLflow's auth bypasses were new routes missing from a permission table. Here an API route must
depend on `deps.optional_user`/`deps.require_user`, a dashboard route on the page session
(`web.PAGE_AUTH`), found by walking the dependency tree; otherwise its endpoint carries the
explicit `public` marker. The open routes are listed below, so adding one is a visible decision.
"""

from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypeVar

import pytest
from fastapi import APIRouter, Depends, FastAPI, Request

from tests.routes import Endpoint, api_endpoints, dependency_calls, other_routes
from trainhub.server.app import create_app
from trainhub.server.deps import PUBLIC_ENDPOINTS, optional_user, require_user
from trainhub.server.leanroutes import LEAN_ENDPOINTS, LeanRoute, include_routers, lean
from trainhub.server.state import hub_state
from trainhub.server.web import PAGE_AUTH

FILES = "/files/{token}/{object_id}/{label}/{name}"
API_AUTH = {optional_user, require_user}
F = TypeVar("F", bound=Callable[..., Any])
PUBLIC_ROUTES = {
    "GET /healthz",
    "GET /metrics",  # checks its token or an admin key (docs/decisions/0016-metrics-access.md)
    f"GET {FILES}",  # the signed token in the path is the credential (docs/protocol/hub-v1.md §10)
    f"HEAD {FILES}",
    "OPTIONS /v1/uploads",  # tus discovery: versions and limits, nothing about anyone
    # ultralytics 8.4 PUTs weights without a key: the signed token in the path is the credential
    # (docs/protocol/platform.md §9.7)
    "PUT /api/uploads/{upload_id}/{token}",
    # a dataset's NDJSON export for data=ul://, signed like a download
    "GET /api/datasets/ndjson/{token}/{dataset_id}/{name}",
    "GET /login",  # the dashboard's sign-in page and form
    "POST /login",
}
# Routes that answer callers without a key (they still refuse a bad key with 401).
ANONYMOUS_ROUTES = {
    "POST /v1/auth",  # answers JSON success false, docs/protocol/hub-v1.md §4.2
    "GET /v1/models",  # with public=True
    "GET /v1/models/{model_id}",  # public models
    "GET /v1/models/{model_id}/metrics",
    "GET /v1/models/{model_id}/console",  # public models, like their metrics
    "GET /v1/models/{model_id}/runs",
    "GET /v1/datasets",
    "GET /v1/datasets/{object_id}",
    "GET /v1/projects",
    "GET /v1/projects/{object_id}",
    "GET /v1/models/{model_id}/exports",
    "GET /v1/exports/{export_id}",
}
# The OpenAPI document, the API reference pages and the static files (not APIRoutes).
OTHER_ROUTES = {"/openapi.json", "/docs", "/redoc", "/static"}


def auth_of(endpoint: Endpoint) -> set[Any]:
    return set(dependency_calls(endpoint.dependant)) & (API_AUTH | PAGE_AUTH)


def test_the_app_has_api_routes_to_check(app: FastAPI) -> None:
    labels = {e.label for e in api_endpoints(app)}
    assert {"GET /v1/models/{model_id}", "POST /v1/auth", "GET /healthz"} <= labels


def test_every_route_needs_a_key_or_a_session_or_is_marked_public(app: FastAPI) -> None:
    unguarded = [
        e.label for e in api_endpoints(app) if not auth_of(e) and e.endpoint not in PUBLIC_ENDPOINTS
    ]
    assert not unguarded, f"routes with neither an auth dependency nor @public: {unguarded}"


def test_the_public_routes_are_exactly_health_downloads_uploads_tus_discovery_and_sign_in(
    app: FastAPI,
) -> None:
    public = {e.label for e in api_endpoints(app) if e.endpoint in PUBLIC_ENDPOINTS}
    assert public == PUBLIC_ROUTES


def test_public_routes_do_not_also_read_a_key_or_a_session(app: FastAPI) -> None:
    both = [e.label for e in api_endpoints(app) if e.endpoint in PUBLIC_ENDPOINTS and auth_of(e)]
    assert not both


def test_api_routes_never_accept_a_dashboard_session(app: FastAPI) -> None:
    for endpoint in api_endpoints(app):
        calls = auth_of(endpoint)
        assert not (calls & API_AUTH and calls & PAGE_AUTH), endpoint.label


def test_the_routes_open_to_callers_without_a_key_are_exactly_the_expected_ones(
    app: FastAPI,
) -> None:
    anonymous = {e.label for e in api_endpoints(app) if auth_of(e) == {optional_user}}
    assert anonymous == ANONYMOUS_ROUTES


def test_the_only_other_routes_are_fastapis_docs_and_static_files(app: FastAPI) -> None:
    assert other_routes(app) == OTHER_ROUTES


def test_each_lean_route_serves_an_api_route_that_needs_a_key(app: FastAPI) -> None:
    """A lean route answers ahead of its FastAPI route (server/leanroutes.py): same method and
    path, and a key is required, as the FastAPI route's dependencies say."""
    lean = [route for route in app.router.routes if isinstance(route, LeanRoute)]
    assert {f"{m} {r.path}" for r in lean for m in r.methods} == {
        "POST /v1/models/{model_id}",
        "POST /v1/agent/heartbeat/models/{model_id}",
    }
    by_label = {e.label: e for e in api_endpoints(app)}
    for route in lean:
        for method in route.methods:
            served = by_label[f"{method} {route.path}"]
            assert served.endpoint is route.endpoint
            assert require_user in set(dependency_calls(served.dependant))


@pytest.fixture
def marked() -> Iterator[Callable[[F], F]]:
    """`lean`, with what it marks forgotten after the test."""
    added: list[Callable[..., Any]] = []

    def mark(endpoint: F) -> F:
        added.append(endpoint)
        return lean(endpoint)

    yield mark
    for endpoint in added:
        LEAN_ENDPOINTS.discard(endpoint)


def limit() -> int:
    return 1


def probe_router(mark: Callable[[F], F], case: str) -> APIRouter:
    """A router with one marked endpoint that a lean route cannot serve, as `case` says."""
    router = APIRouter()
    User = Annotated[Any, Depends(require_user)]
    if case == "another dependency":

        @router.post("/probe/{model_id}")
        @mark
        async def needs_more(
            model_id: str, user: User, request: Request, size: Annotated[int, Depends(limit)]
        ) -> None: ...
    elif case == "a plain def":

        @router.post("/probe/{model_id}")
        @mark
        def blocking(model_id: str, user: User, request: Request) -> None: ...

    elif case == "an int path parameter":

        @router.post("/probe/{number}")
        @mark
        async def numbered(number: int, user: User, request: Request) -> None: ...

    elif case == "a shadowed literal path":

        @router.post("/probe/{model_id}")
        @mark
        async def shadowing(model_id: str, user: User, request: Request) -> None: ...

        @router.post("/probe/import")
        async def literal(user: User) -> None: ...

    return router


@pytest.mark.parametrize(
    ("case", "says"),
    [
        ("another dependency", "takes only"),
        ("a plain def", "async function"),
        ("an int path parameter", "plain str path"),
        ("a shadowed literal path", "would shadow /probe/import"),
    ],
)
def test_a_lean_endpoint_it_cannot_serve_alike_is_refused(
    marked: Callable[[F], F], case: str, says: str
) -> None:
    with pytest.raises(TypeError, match=says):
        include_routers(FastAPI(), [probe_router(marked, case)])


def test_a_dependency_of_the_router_counts_too(marked: Callable[[F], F]) -> None:
    router = APIRouter(dependencies=[Depends(limit)])

    @router.post("/probe/{model_id}")
    @marked
    async def looks_lean(
        model_id: str, user: Annotated[Any, Depends(require_user)], request: Request
    ) -> None: ...

    with pytest.raises(TypeError, match="takes only"):
        include_routers(FastAPI(), [router])


def test_a_dependency_of_an_inclusion_counts_too(marked: Callable[[F], F]) -> None:
    inner = APIRouter()

    @inner.post("/probe/{model_id}")
    @marked
    async def looks_lean(
        model_id: str, user: Annotated[Any, Depends(require_user)], request: Request
    ) -> None: ...

    outer = APIRouter()
    outer.include_router(inner, dependencies=[Depends(limit)])
    with pytest.raises(TypeError, match="takes only"):
        include_routers(FastAPI(), [outer])


def test_an_app_with_dependencies_of_its_own_is_refused(marked: Callable[[F], F]) -> None:
    with pytest.raises(TypeError, match="an app's own dependencies"):
        include_routers(FastAPI(dependencies=[Depends(limit)]), [])


def test_the_lean_routes_are_found_once_and_shared_by_every_app(app: FastAPI) -> None:
    """Finding them builds every route's dependencies: once per process, not per app."""
    other = create_app(hub_state(app).settings)
    try:
        mine = [r for r in app.router.routes if isinstance(r, LeanRoute)]
        theirs = [r for r in other.router.routes if isinstance(r, LeanRoute)]
        assert len(mine) == 2 and all(a is b for a, b in zip(mine, theirs, strict=True))
    finally:
        hub_state(other).db.dispose()


def test_auth_is_found_when_it_is_nested_in_another_dependency() -> None:
    def wrapper(user: Annotated[Any, Depends(require_user)]) -> Any:
        return user

    probe = FastAPI()

    @probe.get("/nested")
    def nested(value: Annotated[Any, Depends(wrapper)]) -> None: ...

    @probe.get("/open")
    def open_route() -> None: ...

    found = {e.path: auth_of(e) for e in api_endpoints(probe)}
    assert found == {"/nested": {require_user, optional_user}, "/open": set()}
