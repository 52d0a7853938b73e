"""Alice's objects, and a request for every route of the app that acts on them.

`build_world` gives alice one private object of each kind (model with metrics and weights,
dataset with an archive, project with a cover, API key, resumable upload, a model whose
ultralytics 8.4 run is in progress) and signs alice and bob in to the dashboard. `request_for`
turns any route into a call on those objects, with a body that works for alice, so a refusal can
only come from the check under test (authorization, or the validation of a hostile id). A route
the table does not know fails loudly.
"""

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI

from tests.factories import (
    PNG_1PX,
    Users,
    create_model,
    dataset_zip,
    epoch_metrics,
    ok,
    upload_weights,
    weights_file,
)
from tests.routes import Endpoint
from tests.testclient import TestClient
from trainhub.server.web import csrf

FILES = "/files/{token}/{object_id}/{label}/{name}"
FORGED_TOKEN = "9999999999.forged-signature"


@dataclass(frozen=True)
class World:
    """Alice's private objects and the credentials that must not reach them."""

    users: Users
    model_id: str
    dataset_id: str
    project_id: str
    key_id: str
    upload_id: str
    export_id: str
    run_model_id: str  # a model with a Platform run in progress (what a cancel needs)
    revoked_key: str
    dataset_url: str
    bob_cookie: str
    bob_csrf: str
    revoked_session: str  # a dashboard session of alice's revoked key
    revoked_csrf: str
    alice_cookie: str
    alice_csrf: str

    def secrets(self) -> set[str]:
        """Return the ids no other caller may learn."""
        return {
            self.model_id,
            self.dataset_id,
            self.project_id,
            self.key_id,
            self.upload_id,
            self.export_id,
            self.run_model_id,
            self.users.alice.id,
        }

    def headers(self, credential: str) -> dict[str, str]:
        return {
            "no key": {},
            "malformed key": {"x-api-key": "../../etc/passwd"},
            "unknown key": {"x-api-key": "ul" + "0" * 40},
            "alice's revoked key": {"x-api-key": self.revoked_key},
            "bob's key": {"x-api-key": self.users.bob.key},
            "bob's session": {"cookie": self.bob_cookie, csrf.HEADER: self.bob_csrf},
            "alice's revoked session": {
                "cookie": self.revoked_session,
                csrf.HEADER: self.revoked_csrf,
            },
            "alice's key": {"x-api-key": self.users.alice.key},
            "alice's session": {"cookie": self.alice_cookie, csrf.HEADER: self.alice_csrf},
        }[credential]


def tus_metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


TUS = {"Tus-Resumable": "1.0.0"}
UPLOAD_LENGTH = 8


def sign_in(app: FastAPI, key: str) -> tuple[str, str]:
    """Sign a browser in with `key`; return its session cookie header and CSRF token."""
    with TestClient(app) as browser:
        browser.get("/login")
        token = browser.cookies[csrf.LOGIN_COOKIE]
        response = browser.post(
            "/login", data={"api_key": key, "csrf_token": token}, follow_redirects=False
        )
        assert response.status_code == 303, response.text
        cookie = "; ".join(f"{name}={value}" for name, value in browser.cookies.items())
        token = re.search(r'data-csrf="([0-9a-f]+)"', browser.get("/settings").text)
        assert token, "no CSRF token on the settings page"
    return cookie, token.group(1)


def key_id_of(app: FastAPI, key: str) -> str:
    with TestClient(app, headers={"x-api-key": key}) as client:
        return str(next(k["id"] for k in ok(client.get("/v1/keys")) if key.startswith(k["prefix"])))


def build_world(app: FastAPI, alice: TestClient, users: Users, tmp_path: Path) -> World:
    """Give alice one private object of each kind; sign alice and bob in to the dashboard."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    model_id = create_model(alice)
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": epoch_metrics(0)}))
    ok(upload_weights(alice, model_id, weights_file(tmp_path / "last.pt")[0]))
    ok(upload_weights(alice, model_id, weights_file(tmp_path / "best.pt")[0], final=True))
    dataset_id = ok(alice.post("/v1/datasets", json={"meta": {"name": "shapes"}}))["id"]
    files = {"shapes.zip": ("shapes.zip", dataset_zip())}
    dataset = ok(alice.post(f"/v1/datasets/{dataset_id}/upload", files=files))
    project_id = ok(alice.post("/v1/projects", json={"meta": {"name": "birds"}}))["id"]
    ok(alice.post(f"/v1/projects/{project_id}/upload", files={"file": ("c.png", PNG_1PX)}))
    ok(alice.patch(f"/v1/models/{model_id}", json={"projectId": project_id}))
    revoked = ok(alice.post("/v1/keys", json={"name": "old laptop"}))
    revoked_session, revoked_csrf = sign_in(app, revoked["key"])
    ok(alice.delete(f"/v1/keys/{revoked['id']}"))
    metadata = tus_metadata(modelId=model_id, type="epoch", epoch="1", isBest="False")
    created = alice.post(
        "/v1/uploads",
        headers={**TUS, "Upload-Length": str(UPLOAD_LENGTH), "Upload-Metadata": metadata},
    )
    assert created.status_code == 201, created.text
    export = ok(alice.post(f"/v1/models/{model_id}/export", json={"format": "onnx"}))
    started = alice.post(
        "/api/webhooks/training/metrics",
        json={"event": "training_started", "data": {"epochs": 3}, "project": "runs", "name": "r"},
    )
    assert started.status_code == 200, started.text
    cookie, token = sign_in(app, users.bob.key)
    alice_cookie, alice_token = sign_in(app, users.alice.key)
    return World(
        users=users,
        model_id=model_id,
        dataset_id=dataset_id,
        project_id=project_id,
        key_id=key_id_of(app, users.alice.key),
        upload_id=created.headers["location"].rsplit("/", 1)[1],
        export_id=export["id"],
        run_model_id=started.json()["modelId"],
        revoked_key=revoked["key"],
        dataset_url=dataset["url"].removeprefix("http://testserver"),
        bob_cookie=cookie,
        bob_csrf=token,
        revoked_session=revoked_session,
        revoked_csrf=revoked_csrf,
        alice_cookie=alice_cookie,
        alice_csrf=alice_token,
    )


def path_value(name: str, path: str, world: World) -> str:
    """Return the real id of alice's object that the path parameter `name` takes."""
    forged = world.dataset_url.split("/")
    values = {
        "model_id": world.model_id,
        "dataset_id": world.dataset_id,
        "project_id": world.project_id,
        "user_id": world.users.alice.id,
        "key_id": world.key_id,
        "upload_id": world.upload_id,
        "export_id": world.export_id,
        "token": FORGED_TOKEN,
        "label": forged[4],
        "name": forged[5],
        # ul:// names (docs/protocol/platform.md §9.10) may be ids, which the matrix's renames
        # (alice, her model, dataset and project) leave as they are
        "owner": world.users.alice.id,
        "project": world.project_id,
        "model": world.model_id,
        "slug": world.dataset_id,
    }
    if name == "object_id":
        return world.project_id if path.startswith("/v1/projects") else world.dataset_id
    if name == "model_id" and path.endswith(("/cancel", "/stop")):
        return world.run_model_id
    if name not in values:
        raise AssertionError(f"teach the authz matrix which of alice's objects {{{name}}} takes")
    return values[name]


Body = Callable[[World], dict[str, Any]]


def json_body(make: Callable[[World], Any]) -> Body:
    return lambda w: {"json": make(w)}


NO_BODY: Body = lambda w: {}  # noqa: E731
# Request bodies that would succeed for alice, so only authorization stands in the way.
BODIES: dict[str, Body] = {
    "POST /v1/auth": NO_BODY,
    "POST /v1/models": json_body(
        lambda w: {"meta": {"name": "x"}, "projectId": w.project_id, "datasetId": w.dataset_id}
    ),
    "PATCH /v1/models/{model_id}": json_body(lambda w: {"meta": {"name": "pwned"}, "public": True}),
    "POST /v1/models/{model_id}": json_body(
        lambda w: {"type": "metrics", "metrics": epoch_metrics(7)}
    ),
    "POST /v1/models/{model_id}/upload": lambda w: {
        "data": {"epoch": "9", "type": "final", "map": "0.9"},
        "files": {"best.pt": ("best.pt", b"pwned weights")},
    },
    "POST /v1/uploads": lambda w: {
        "headers": {
            **TUS,
            "Upload-Length": "4",
            "Upload-Metadata": tus_metadata(modelId=w.model_id, type="epoch", epoch="2"),
        }
    },
    "HEAD /v1/uploads/{upload_id}": lambda w: {"headers": TUS},
    "PATCH /v1/uploads/{upload_id}": lambda w: {
        "headers": {
            **TUS,
            "Upload-Offset": "0",
            "content-type": "application/offset+octet-stream",
        },
        "content": b"x" * UPLOAD_LENGTH,
    },
    "DELETE /v1/uploads/{upload_id}": lambda w: {"headers": TUS},
    "POST /v1/agent/heartbeat/models/{model_id}": json_body(
        lambda w: {"agent": "python-3.11.7-local", "agentId": None}
    ),
    "POST /v1/datasets": json_body(lambda w: {"meta": {"name": "mine"}}),
    "PATCH /v1/datasets/{object_id}": json_body(lambda w: {"meta": {"name": "pwned"}}),
    "POST /v1/datasets/{dataset_id}/upload": lambda w: {
        "files": {"shapes.zip": ("shapes.zip", dataset_zip())}
    },
    "POST /v1/projects": json_body(lambda w: {"meta": {"name": "mine"}}),
    "PATCH /v1/projects/{object_id}": json_body(lambda w: {"meta": {"name": "pwned"}}),
    "POST /v1/projects/{project_id}/upload": lambda w: {"files": {"file": ("c.png", PNG_1PX)}},
    "POST /v1/users": json_body(lambda w: {"name": "mallory", "is_admin": True}),
    "PATCH /v1/users/{user_id}": json_body(lambda w: {"meta": {"name": "pwned"}}),
    "POST /v1/keys": json_body(lambda w: {"name": "mine"}),
    "POST /model-reset": json_body(lambda w: {"modelId": w.model_id}),
    "POST /v1/models/{model_id}/export": json_body(lambda w: {"format": "onnx"}),
    "POST /get-export": json_body(lambda w: {"modelId": w.model_id, "format": "onnx"}),
    "POST /v1/predict/{model_id}": lambda w: {"files": {"image": ("image", PNG_1PX)}},
    "POST /qa/model/{model_id}/clear_exports": NO_BODY,
    "POST /v1/models/{model_id}/cancel": NO_BODY,
    "POST /api/webhooks/training/metrics": json_body(
        lambda w: {
            "event": "epoch_end",
            "data": {"epoch": 4, "metrics": {"train/box_loss": 0.5}},
            "modelId": w.model_id,
        }
    ),
    "POST /api/webhooks/models/upload": json_body(
        lambda w: {"filename": "best.pt", "modelId": w.model_id}
    ),
    "PUT /api/uploads/{upload_id}/{token}": lambda w: {"content": b"pwned weights"},
    "POST /login": lambda w: {"data": {"api_key": w.revoked_key, "csrf_token": "guessed"}},
    "POST /logout": NO_BODY,
    "POST /models/{model_id}/rename": lambda w: {"data": {"name": "pwned"}},
    "POST /models/{model_id}/visibility": lambda w: {"data": {"public": "true"}},
    "POST /models/{model_id}/reset": lambda w: {"data": {"confirm": "yes"}},
    "POST /models/{model_id}/stop": NO_BODY,
    "POST /models/{model_id}/delete": lambda w: {"data": {"confirm": "yes", "hard": "yes"}},
    "POST /models/{model_id}/exports": lambda w: {"data": {"format": "onnx"}},
    "POST /models/{model_id}/preview": lambda w: {"files": {"image": ("image.png", PNG_1PX)}},
    "POST /datasets/upload": lambda w: {
        "files": {"file": ("mine.zip", dataset_zip("mine"))},
        "data": {"name": "mine"},
    },
    "POST /projects": lambda w: {"data": {"name": "mine"}},
    "POST /projects/{project_id}/cover": lambda w: {"files": {"file": ("c.png", PNG_1PX)}},
    "POST /settings/keys": lambda w: {"data": {"name": "mine"}},
    "POST /settings/keys/{key_id}/revoke": NO_BODY,
}
QUERIES: dict[str, Callable[[World], dict[str, Any]]] = {
    "GET /v1/models": lambda w: {"limit": 100},
    "DELETE /v1/models/{model_id}": lambda w: {"hard": "True"},
    "DELETE /v1/datasets/{object_id}": lambda w: {"hard": "True"},
    "DELETE /v1/projects/{object_id}": lambda w: {"hard": "True"},
    "GET /models/events": lambda w: {"ids": w.model_id},
    "GET /compare": lambda w: {"ids": [w.model_id]},
    "GET /compare/chart.json": lambda w: {"ids": [w.model_id], "metric": "train/box_loss"},
    "GET /models/{model_id}/chart.json": lambda w: {"metric": "train/box_loss"},
}


def as_sent(text: str) -> str:
    """Escape path text so that the app sees what a real server would see for `text` sent raw.

    Starlette's TestClient percent-decodes a path that httpx has decoded already, so an escape
    in a test URL is decoded twice in-process but once by uvicorn; escaping once more evens it.
    """
    return quote(text, safe="")


def request_for(
    endpoint: Endpoint, world: World, replace: dict[str, str] | None = None
) -> tuple[str, dict[str, Any]]:
    """Return the URL and the keyword arguments of a call of `endpoint` on alice's objects.

    `replace` puts other text in some path parameters, sent as given (percent-escapes too).
    """
    path = endpoint.path
    for name in endpoint.path_params:
        value = (replace or {}).get(name) or path_value(name, endpoint.path, world)
        path = path.replace(f"{{{name}}}", value)
    if endpoint.method in ("POST", "PATCH", "PUT") and endpoint.label not in BODIES:
        raise AssertionError(f"teach the authz matrix a request body for {endpoint.label}")
    kwargs = BODIES.get(endpoint.label, NO_BODY)(world)
    if endpoint.label in QUERIES:
        kwargs["params"] = QUERIES[endpoint.label](world)
    return path, kwargs


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    client: TestClient,
    endpoint: Endpoint,
    world: World,
    credential: str,
    replace: dict[str, str] | None = None,
) -> Answer:
    """Send one request; read an event stream's first two chunks only (it never ends)."""
    url, kwargs = request_for(endpoint, world, replace)
    kwargs["headers"] = {**kwargs.get("headers", {}), **world.headers(credential)}
    with client.stream(endpoint.method, url, follow_redirects=False, **kwargs) as response:
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            chunks = response.iter_bytes()
            body = next(chunks, b"") + next(chunks, b"")
        else:
            body = response.read()
        return Answer(response.status_code, dict(response.headers), body)
