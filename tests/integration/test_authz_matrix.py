"""Object-level authorization of every route, for every wrong credential (docs/security.md §2.3).

Alice owns a private model (with metrics and weights), dataset (with an archive), project (with a
cover), an API key and an unfinished resumable upload. Each route of the app is called with real
ids of those objects, and with a body that would work for alice, by callers who must not reach
them: no key, a malformed key, an unknown key, alice's revoked key and a dashboard session of
it, bob's key, and bob's dashboard session (with a valid CSRF token). No call may succeed on
alice's objects, none may fail with a 500, and every refusal is the JSON ErrorBody. Routes on
the caller's own collection (lists, creates) may succeed for bob, but never show alice's ids.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.factories import Users, ok
from tests.routes import Endpoint, api_endpoints
from tests.testclient import TestClient
from tests.world import FILES, FORGED_TOKEN, TUS, Answer, World, build_world, call
from trainhub.server.web.routing import PageRoute

# Open to anyone by design; success there says nothing about alice's objects.
PUBLIC_BY_DESIGN = {"GET /healthz", "OPTIONS /v1/uploads", "GET /login"}
# No worker runs in these tests: 503 is the honest answer to a caller who passed the checks.
NEEDS_A_WORKER = {"POST /v1/predict/{model_id}", "POST /models/{model_id}/preview"}
# The caller's own collection: a valid caller may succeed, and must not see alice's ids.
OWN_COLLECTION = {
    "POST /v1/auth",
    "GET /v1/models",
    "GET /v1/datasets",
    "POST /v1/datasets",
    "GET /v1/projects",
    "POST /v1/projects",
    "GET /v1/users",
    "GET /v1/keys",
    "POST /v1/keys",
    "POST /logout",
    "GET /",
    "GET /models",
    "GET /models/events",
    "GET /compare",
    "GET /compare/chart.json",
    "GET /datasets",
    "POST /datasets/upload",
    "GET /projects",
    "POST /projects",
    "GET /settings",
    "POST /settings/keys",
    "GET /api/account/summary",
}
ENDS_SESSION = {"POST /logout"}
CREDENTIALS = [
    "no key",
    "malformed key",
    "unknown key",
    "alice's revoked key",
    "alice's revoked session",
    "bob's key",
    "bob's session",
]


@pytest.fixture
def world(app: FastAPI, alice: TestClient, users: Users, tmp_path: Path) -> World:
    return build_world(app, alice, users, tmp_path)


def acts_as_bob(endpoint: Endpoint, credential: str) -> bool:
    """Tell whether this credential is a valid identity on this kind of route."""
    is_page = isinstance(endpoint.route, PageRoute)
    return credential == ("bob's session" if is_page else "bob's key")


def problems(endpoint: Endpoint, credential: str, answer: Answer, world: World) -> Iterator[str]:
    """Yield what is wrong with one answer."""
    label, status = endpoint.label, answer.status
    if status >= 500 and not (status == 503 and label in NEEDS_A_WORKER):
        yield f"answered {status}"
    if status >= 400 and endpoint.method != "HEAD":
        try:
            body = answer.json()
            assert body["success"] is False and isinstance(body["message"], str)
        except (ValueError, KeyError, TypeError, AssertionError):
            yield f"answered {status} without the JSON ErrorBody: {answer.body[:120]!r}"
    if label in PUBLIC_BY_DESIGN:
        return
    if label in OWN_COLLECTION and acts_as_bob(endpoint, credential):
        shown = answer.body.decode("utf-8", "replace") + answer.headers.get("location", "")
        leaked = sorted(s for s in world.secrets() if s in shown)
        if leaked:
            yield f"answered {status} showing alice's ids {leaked}"
        return
    if not 400 <= status < 500 and not (status == 503 and label in NEEDS_A_WORKER):
        yield f"answered {status} to a caller without access: {answer.body[:160]!r}"


def check_world_intact(alice: TestClient, world: World) -> None:
    """Assert alice's objects are exactly as the world fixture left them."""
    model = ok(alice.get(f"/v1/models/{world.model_id}"))
    assert (model["meta"]["name"], model["public"], model["status"]) == ("m", False, "trained")
    assert model["has_last_weights"] and model["has_best_weights"]
    metrics = ok(alice.get(f"/v1/models/{world.model_id}/metrics"))
    assert [set(series["data"]) for series in metrics] == [{"0"}]
    dataset = ok(alice.get(f"/v1/datasets/{world.dataset_id}"))
    assert (dataset["meta"]["name"], dataset["public"]) == ("shapes", False)
    assert (
        dataset["url"].removeprefix("http://testserver").split("/")[3:]
        == (world.dataset_url.split("/")[3:])
    )
    project = ok(alice.get(f"/v1/projects/{world.project_id}"))
    assert (project["meta"]["name"], project["public"]) == ("birds", False)
    assert project["cover"] is not None
    me = ok(alice.get(f"/v1/users/{world.users.alice.id}"))
    assert (me["meta"]["name"], me["is_admin"]) == ("alice", True)
    users = {u["meta"]["name"] for u in ok(alice.get("/v1/users"))}
    assert "mallory" not in users
    offset = alice.head(f"/v1/uploads/{world.upload_id}", headers=TUS)
    assert (offset.status_code, offset.headers["upload-offset"]) == (200, "0")
    assert {k["id"] for k in ok(alice.get("/v1/keys")) if k["revokedAt"] is None} == {world.key_id}


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_no_wrong_credential_reaches_alices_objects_on_any_route(
    app: FastAPI, alice: TestClient, world: World, credential: str
) -> None:
    endpoints = api_endpoints(app)
    assert len(endpoints) > 40
    # signing out ends the session for good: a session credential must reach every other route
    endpoints.sort(key=lambda e: e.label in ENDS_SESSION)
    failures = []
    with TestClient(app, raise_server_exceptions=False) as client:
        for endpoint in endpoints:
            answer = call(client, endpoint, world, credential)
            failures += [
                f"{endpoint.label}: {p}" for p in problems(endpoint, credential, answer, world)
            ]
    assert not failures, f"as {credential}:\n" + "\n".join(failures)
    check_world_intact(alice, world)


# Calls that end the object they act on: the owner check gives each a world of its own.
DESTRUCTIVE = {
    "DELETE /v1/models/{model_id}",
    "DELETE /v1/uploads/{upload_id}",
    "POST /models/{model_id}/reset",
    "POST /models/{model_id}/delete",
    "POST /logout",  # ends the dashboard session it is sent with
    # these end the model's final weights or its exports, which other calls use
    "POST /model-reset",
    "POST /v1/models/{model_id}/upload",
    "POST /qa/model/{model_id}/clear_exports",
}
# Calls the owner check leaves out: they end alice's own access, or refuse her by design.
OWNER_SKIPS = {
    "DELETE /v1/keys/{key_id}",  # covered by test_users_and_keys.py
    "POST /settings/keys/{key_id}/revoke",
    "DELETE /v1/users/{user_id}",  # nobody deletes themselves
    "POST /login",  # the matrix sends a guessed CSRF token
    f"GET {FILES}",  # the matrix forges the token; see the test below
    f"HEAD {FILES}",
    # the matrix forges the token; tests/integration/test_platform_uploads.py PUTs real ones
    "PUT /api/uploads/{upload_id}/{token}",
    # likewise; tests/integration/test_platform_files.py downloads real exports
    "GET /api/datasets/ndjson/{token}/{dataset_id}/{name}",
}


def test_the_owner_gets_through_with_the_same_requests(
    app: FastAPI, alice: TestClient, users: Users, world: World, tmp_path: Path
) -> None:
    """The matrix's ids and bodies are right: alice herself succeeds with every one of them."""
    failures = []
    endpoints = [e for e in api_endpoints(app) if e.label not in OWNER_SKIPS]
    # the shared world's own DELETEs come last, so every other call still finds its object
    endpoints.sort(key=lambda e: e.method == "DELETE")
    with TestClient(app, raise_server_exceptions=False) as client:
        for endpoint in endpoints:
            used = world
            if endpoint.label in DESTRUCTIVE:
                folder = tmp_path / endpoint.method / endpoint.path.strip("/")
                folder.mkdir(parents=True)
                used = build_world(app, alice, users, folder)
            page = isinstance(endpoint.route, PageRoute)
            answer = call(client, endpoint, used, "alice's session" if page else "alice's key")
            expected = 503 if endpoint.label in NEEDS_A_WORKER else None
            if answer.status >= 400 and answer.status != expected:
                failures.append(f"{endpoint.label}: {answer.status} {answer.body[:160]!r}")
    assert not failures, "\n".join(failures)


def test_the_files_route_serves_alices_real_link_but_not_a_forged_token(
    anon: TestClient, world: World
) -> None:
    assert anon.get(world.dataset_url).status_code == 200
    parts = world.dataset_url.split("/")
    parts[2] = FORGED_TOKEN
    forged = anon.get("/".join(parts))
    assert forged.status_code == 404
    assert forged.json()["success"] is False


def test_bobs_session_reaches_his_own_pages(app: FastAPI, world: World) -> None:
    """Bob's dashboard session is a working credential, so the matrix's refusals mean something."""
    with TestClient(app, headers=world.headers("bob's session")) as client:
        assert client.get("/models").status_code == 200
        assert client.get("/settings").status_code == 200


@pytest.mark.parametrize("collection", ["models", "datasets", "projects"])
def test_a_list_cursor_naming_another_users_object_answers_like_an_unknown_one(
    alice: TestClient, bob: TestClient, world: World, collection: str
) -> None:
    """A cursor must not tell bob whether alice's private id exists (no enumeration)."""
    private = {"models": world.model_id, "datasets": world.dataset_id}.get(
        collection, world.project_id
    )
    unknown = bob.get(f"/v1/{collection}", params={"last_doc_id": "A" * 20})
    for public in ("False", "True"):
        guessed = bob.get(f"/v1/{collection}", params={"last_doc_id": private, "public": public})
        assert (guessed.status_code, guessed.json()["success"]) == (404, False), guessed.text
    assert unknown.status_code == 404
    ok(alice.get(f"/v1/{collection}", params={"last_doc_id": private}))
