"""The lean routes (server/leanroutes.py) answer exactly as the FastAPI routes behind them.

Each request below is sent twice to one app: once as it is built (the lean route answers), once
with the lean routes taken out (FastAPI's route answers). Status, body and headers must be the
same, the rate limit's counters aside. The models are made fresh for each side, so both see
the same state.
"""

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import Users, create_model, create_users, epoch_metrics, ok
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.deps import Principal, require_user
from trainhub.server.leanroutes import LeanRoute
from trainhub.server.state import hub_state

COUNTERS = {"date", "x-ratelimit-remaining", "x-ratelimit-reset"}
UNKNOWN_ID = "A" * 20
KEYLESS: dict[str, str] = {}


@contextmanager
def without_lean_routes(app: FastAPI) -> Iterator[list[LeanRoute]]:
    routes = app.router.routes
    lean = [route for route in routes if isinstance(route, LeanRoute)]
    assert lean, "the app has no lean routes to take out"
    routes[:] = [route for route in routes if not isinstance(route, LeanRoute)]
    try:
        yield lean
    finally:
        routes[:0] = lean


def answer(response: Any) -> tuple[int, Any, dict[str, str]]:
    headers = {k: v for k, v in response.headers.items() if k.lower() not in COUNTERS}
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body["data"].pop("agentId", None)  # a new agent each time
    if isinstance(body, dict) and isinstance(body.get("message"), str):  # each side's own model
        body["message"] = re.sub(r"'[A-Za-z0-9]{20}'", "'<id>'", body["message"])
    return response.status_code, body, headers


Request = Callable[[TestClient, TestClient, str, str], Any]


def post_metrics(body: Any, headers: dict[str, str] | None = None) -> Request:
    def send(alice: TestClient, bob: TestClient, mine: str, bobs: str) -> Any:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return alice.post(
            f"/v1/models/{mine}",
            content=content,
            headers=headers if headers is not None else {"content-type": "application/json"},
        )

    return send


def beat(body: Any, target: str = "mine", key: bool = True) -> Request:
    def send(alice: TestClient, bob: TestClient, mine: str, bobs: str) -> Any:
        model = {"mine": mine, "bobs": bobs, "unknown": UNKNOWN_ID, "malformed": "x"}[target]
        headers = None if key else {"x-api-key": ""}
        return alice.post(f"/v1/agent/heartbeat/models/{model}", json=body, headers=headers)

    return send


CASES: dict[str, Request] = {
    "an epoch": post_metrics({"metrics": epoch_metrics(0, loss=0.5)}),
    "two epochs, NaN among them": post_metrics(
        b'{"metrics": {"0": "{\\"loss\\": NaN}", "1": "{\\"loss\\": 0.25}"}}'
    ),
    "not JSON": post_metrics(b"{not json"),
    "an empty body": post_metrics(b""),
    "not an object": post_metrics([1, 2]),
    "the wrong content type": post_metrics(b"{}", {"content-type": "text/plain"}),
    "too large": post_metrics(b'{"metrics": {"0": "' + b"1" * (2 * 1024**2) + b'"}}'),
    "metrics of the wrong type": post_metrics({"metrics": {"zero": "{}"}}),
    "a beat": beat({"agent": "python-3.11", "agentId": None}),
    "a beat without an agent": beat({"agentId": None}),
    "a beat of another user's model": beat({"agent": "a", "agentId": None}, "bobs"),
    "a beat of an unknown model": beat({"agent": "a", "agentId": None}, "unknown"),
    "a beat of a malformed id": beat({"agent": "a", "agentId": None}, "malformed"),
    "a beat with an empty key": beat({"agent": "a", "agentId": None}, key=False),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_lean_route_answers_as_fastapis_route(
    app: FastAPI, alice: TestClient, bob: TestClient, case: str
) -> None:
    send = CASES[case]
    lean = send(alice, bob, create_model(alice), create_model(bob))
    with without_lean_routes(app):
        behind = send(alice, bob, create_model(alice), create_model(bob))
    assert answer(lean) == answer(behind)


@pytest.mark.parametrize("key", ["", "not-a-key-at-all", "Bearer"])
def test_a_missing_or_wrong_key_is_refused_alike(app: FastAPI, users: Users, key: str) -> None:
    owner = TestClient(app, headers={"x-api-key": users.alice.key})
    caller = TestClient(app, headers={"x-api-key": key} if key else KEYLESS)
    model = create_model(owner)
    for path in (f"/v1/models/{model}", f"/v1/agent/heartbeat/models/{model}"):
        lean = caller.post(path, json={"metrics": {}, "agent": "a"})
        with without_lean_routes(app):
            behind = caller.post(path, json={"metrics": {}, "agent": "a"})
        assert lean.status_code == 401
        assert answer(lean) == answer(behind)


def test_the_lean_routes_serve_their_requests_and_leave_the_others(
    app: FastAPI, alice: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    handle = LeanRoute.handle

    async def counting(self: LeanRoute, scope: Any, receive: Any, send: Any) -> None:
        served.append(f"{scope['method']} {self.path}")
        await handle(self, scope, receive, send)

    monkeypatch.setattr(LeanRoute, "handle", counting)
    model = create_model(alice)
    ok(alice.post(f"/v1/models/{model}", json={"metrics": epoch_metrics(0, loss=1.0)}))
    ok(alice.post(f"/v1/agent/heartbeat/models/{model}", json={"agent": "a", "agentId": None}))
    ok(alice.get(f"/v1/models/{model}"))  # the same path, another method: FastAPI's route
    ok(alice.get(f"/v1/models/{model}/metrics"))
    assert served == [
        "POST /v1/models/{model_id}",
        "POST /v1/agent/heartbeat/models/{model_id}",
    ]
    for path in (f"/v1/models/{model}", f"/v1/agent/heartbeat/models/{model}"):
        refused = alice.put(path, json={})  # a method neither route takes: FastAPI's 405
        assert refused.status_code == 405
        assert "POST" in refused.headers["allow"]
    assert len(served) == 2


def test_past_the_rate_limit_both_refuse_alike(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, rate_limit="4/minute")
    app = create_app(settings)
    try:
        alice = TestClient(app, headers={"x-api-key": create_users(hub_state(app).db).alice.key})
        model = create_model(alice)  # 1
        beat = {"agent": "a", "agentId": None}
        path = f"/v1/agent/heartbeat/models/{model}"
        for _ in range(3):  # 2, 3, 4
            ok(alice.post(path, json=beat))
        lean = alice.post(path, json=beat)
        with without_lean_routes(app):
            behind = alice.post(path, json=beat)
        assert lean.status_code == behind.status_code == 429
        assert int(lean.headers["retry-after"]) > 0
        assert answer(lean)[:2] == answer(behind)[:2]
        assert answer(lean)[2].keys() == answer(behind)[2].keys()
    finally:
        hub_state(app).db.dispose()


def test_an_app_with_overridden_dependencies_is_served_by_fastapis_route(
    app: FastAPI, alice: TestClient, users: Users
) -> None:
    model = create_model(alice)
    bob = Principal(user_id=users.bob.id, name="bob", is_admin=False, key_id="k")
    app.dependency_overrides[require_user] = lambda: bob
    try:
        answer = alice.post(f"/v1/agent/heartbeat/models/{model}", json={"agent": "a"})
    finally:
        app.dependency_overrides.clear()
    assert answer.status_code == 404  # served as bob, as the override says: not bob's model
