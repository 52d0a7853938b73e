"""The dashboard in-process: sign-in, CSRF, pages, object-level access, actions and API keys."""

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from tests.factories import (
    Users,
    create_model,
    epoch_metrics,
    error,
    ok,
    upload_weights,
    weights_file,
)
from tests.testclient import TestClient
from trainhub.server import web
from trainhub.server.db.tables import ModelRow
from trainhub.server.deps import PUBLIC_ENDPOINTS
from trainhub.server.state import hub_state
from trainhub.server.web import auth

HTML = {"accept": "text/html,application/xhtml+xml"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def sign_in(app: FastAPI, key: str) -> TestClient:
    """Return a browser-like client signed in with `key`."""
    client = TestClient(app, headers=HTML)
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"api_key": key, "csrf_token": csrf_of(page.text), "next": "/models"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/models"
    return client


def page_token(client: TestClient, path: str = "/settings") -> str:
    """Return the session's CSRF token, read from a page."""
    return csrf_of(client.get(path).text)


@pytest.fixture
def alice_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.alice.key) as client:
        yield client


@pytest.fixture
def bob_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.bob.key) as client:
        yield client


# --- sign-in, cookies, sign-out -----------------------------------------------------------


def test_pages_redirect_to_sign_in_and_data_endpoints_answer_401(app, users) -> None:
    model_id = create_model(TestClient(app, headers={"x-api-key": users.alice.key}))
    browser = TestClient(app, headers=HTML)
    answer = browser.get("/models?status=new", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fmodels%3Fstatus%3Dnew"
    script = TestClient(app)
    assert error(script.get(f"/models/{model_id}/chart.json"), 401)
    assert script.get("/static/app.css").status_code == 200
    assert script.get("/static/vendor/uplot/uPlot.iife.min.js").status_code == 200


def test_sign_in_sets_a_random_httponly_lax_cookie_that_holds_no_key(app, users) -> None:
    client = TestClient(app, headers=HTML)
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"api_key": users.alice.key, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    cookie = next(
        c for c in answer.headers.get_list("set-cookie") if c.startswith(auth.COOKIE_NAME)
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert users.alice.key not in cookie and users.alice.key[2:] not in cookie
    assert client.get("/models").status_code == 200
    assert "Signed in as <strong>alice</strong>" in client.get("/models").text


def test_the_cookie_is_secure_when_the_public_url_is_https(tmp_path: Path, database_url) -> None:
    from tests.conftest import make_settings
    from tests.factories import create_users
    from trainhub.server.app import create_app

    settings = make_settings(tmp_path, database_url, public_url="https://testserver")
    application = create_app(settings)
    try:
        users = create_users(hub_state(application).db)
        client = TestClient(application, base_url="https://testserver", headers=HTML)
        page = client.get("/login")
        answer = client.post(
            "/login",
            data={"api_key": users.bob.key, "csrf_token": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert "Secure" in answer.headers["set-cookie"]
    finally:
        hub_state(application).db.dispose()


def test_a_bad_key_is_refused_with_a_plain_message(app, users) -> None:
    client = TestClient(app, headers=HTML)
    page = client.get("/login")
    answer = client.post(
        "/login", data={"api_key": "ul" + "0" * 40, "csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 401
    assert "not valid or was revoked" in answer.text
    assert client.get("/models", follow_redirects=False).status_code == 303


def test_sign_in_without_the_login_token_is_refused(app, users) -> None:
    client = TestClient(app, headers=HTML)
    answer = client.post("/login", data={"api_key": users.alice.key, "csrf_token": "forged"})
    assert answer.status_code == 403
    assert "expired or came from another site" in answer.text


def test_a_tampered_cookie_signs_nobody_in(app, users, alice_web) -> None:
    value = alice_web.cookies[auth.COOKIE_NAME]
    flipped = ("A" if value[0] != "A" else "B") + value[1:]
    forged = TestClient(app, headers=HTML)
    for bad in (flipped, value[:-1], value + "x", "garbage", ""):
        forged.cookies.set(auth.COOKIE_NAME, bad)
        assert forged.get("/models", follow_redirects=False).status_code == 303


def test_revoking_the_key_signs_its_sessions_out(app, users, alice) -> None:
    browser = sign_in(app, users.bob.key)
    assert browser.get("/models").status_code == 200
    bob_api = TestClient(app, headers={"x-api-key": users.bob.key})
    keys = ok(bob_api.get("/v1/keys"))
    ok(bob_api.delete(f"/v1/keys/{keys[0]['id']}"))
    assert browser.get("/models", follow_redirects=False).headers["location"].startswith("/login")


def test_sign_out_needs_the_token_and_clears_the_cookie(alice_web) -> None:
    assert alice_web.post("/logout", follow_redirects=False).status_code == 403
    token = page_token(alice_web)
    answer = alice_web.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?signed_out=1"
    assert alice_web.get("/models", follow_redirects=False).status_code == 303


def test_next_never_leaves_the_site(app, users) -> None:
    client = TestClient(app, headers=HTML)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        page = client.get("/login")
        answer = client.post(
            "/login",
            data={"api_key": users.alice.key, "csrf_token": csrf_of(page.text), "next": target},
            follow_redirects=False,
        )
        assert answer.headers["location"] == "/"
        client.cookies.clear()


# --- CSRF ---------------------------------------------------------------------------------


def test_forms_without_the_csrf_token_are_refused(alice, alice_web) -> None:
    model_id = create_model(alice, meta={"name": "before"})
    path = f"/models/{model_id}/rename"
    assert alice_web.post(path, data={"name": "after"}).status_code == 403
    assert alice_web.post(path, data={"name": "after", "csrf_token": "0" * 64}).status_code == 403
    token = page_token(alice_web)
    cross = alice_web.post(
        path,
        data={"name": "after", "csrf_token": token},
        headers={"origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    assert ok(alice.get(f"/v1/models/{model_id}"))["meta"]["name"] == "before"


def test_another_sessions_token_is_refused(alice, alice_web, bob_web) -> None:
    model_id = create_model(alice, meta={"name": "before"})
    bobs = page_token(bob_web)
    answer = alice_web.post(f"/models/{model_id}/rename", data={"name": "x", "csrf_token": bobs})
    assert answer.status_code == 403


# --- pages and object-level access ---------------------------------------------------------


def test_every_page_renders_for_the_owner(alice, alice_web, tmp_path: Path) -> None:
    model_id = create_model(alice)
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": epoch_metrics(0)}))
    project_id = ok(alice.post("/v1/projects", json={"meta": {"name": "p"}}))["id"]
    pages = [
        "/",
        "/models",
        f"/models/{model_id}",
        f"/compare?ids={model_id}",
        "/compare",
        "/datasets",
        "/projects",
        f"/projects/{project_id}",
        "/settings",
        "/login",
    ]
    for path in pages:
        answer = alice_web.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["cache-control"] == "no-store"
        assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_the_empty_list_says_how_to_start(alice_web) -> None:
    page = alice_web.get("/models").text
    assert "No models yet: here is how to start one" in page
    assert "export ULTRALYTICS_HUB_API=http://testserver" in page


def test_another_users_private_model_is_404_and_never_listed(alice, bob, alice_web) -> None:
    private = create_model(bob, meta={"name": "bobs-secret"})
    for path in (
        f"/models/{private}",
        f"/models/{private}/chart.json",
        f"/models/{private}/events",
        f"/compare/chart.json?ids={private}&metric=x",
    ):
        answer = alice_web.get(path)
        if path.endswith("metric=x"):
            assert private not in answer.text
            continue
        assert answer.status_code == 404, path
    page = alice_web.get(f"/models/{private}")
    assert "Not found" in page.text and page.headers["content-type"].startswith("text/html")
    for listing in ("/models", "/models?scope=public", f"/compare?ids={private}"):
        assert "bobs-secret" not in alice_web.get(listing).text
    assert (
        alice_web.post(
            f"/models/{private}/rename", data={"name": "x", "csrf_token": page_token(alice_web)}
        ).status_code
        == 404
    )


def test_a_public_model_is_readable_but_not_writable(bob, alice_web) -> None:
    shared = create_model(bob, meta={"name": "bobs-public"}, public=True)
    page = alice_web.get(f"/models/{shared}")
    assert page.status_code == 200 and "bobs-public" in page.text
    assert "Rename" not in page.text
    assert "bobs-public" in alice_web.get("/models?scope=public").text
    assert "bobs-public" not in alice_web.get("/models").text
    answer = alice_web.post(
        f"/models/{shared}/rename", data={"name": "mine now", "csrf_token": page_token(alice_web)}
    )
    assert answer.status_code == 403
    assert "Not allowed" in answer.text


def test_html_error_pages_only_on_dashboard_routes(alice_web) -> None:
    api = alice_web.get("/v1/models/" + "x" * 20)
    assert api.headers["content-type"].startswith("application/json")
    page = alice_web.get("/models/" + "x" * 20)
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "model &#39;xxxxxxxxxxxxxxxxxxxx&#39; not found" in page.text
    script = alice_web.get("/models/" + "x" * 20 + "/chart.json", headers={"accept": "*/*"})
    assert script.headers["content-type"].startswith("application/json")


def test_names_are_escaped(alice, alice_web) -> None:
    model_id = create_model(alice, meta={"name": "<script>alert(1)</script>"})
    for path in ("/models", f"/models/{model_id}"):
        text = alice_web.get(path).text
        assert "<script>alert(1)" not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_the_model_page_shows_weights_liveness_arguments_and_snippets(
    alice, alice_web, anon, tmp_path: Path
) -> None:
    model_id = create_model(alice, meta={"name": "runner"})
    beat = {"agent": "gpu-box", "agentId": None, "interval": 30}
    ok(alice.post(f"/v1/agent/heartbeat/models/{model_id}", json=beat))
    path, sha256 = weights_file(tmp_path / "last.pt")
    ok(upload_weights(alice, model_id, path, epoch=1))
    page = alice_web.get(f"/models/{model_id}").text
    assert "gpu-box" in page and "training, online" in page
    assert sha256 in page and "2 of 3" in page
    assert f"YOLO(&#34;http://testserver/models/{model_id}&#34;)" in page
    assert "from trainhub import HUBTrainingSession" in page
    assert "export ULTRALYTICS_HUB_WEB=http://testserver" in page
    assert "<dt>epochs</dt>" in page
    href = re.search(r'href="(http://testserver/files/[^"]+)" download', page)
    assert href
    download = anon.get(href.group(1).removeprefix("http://testserver"))
    assert download.status_code == 200 and download.headers["etag"] == f'"{sha256}"'


# --- actions ------------------------------------------------------------------------------


def test_rename_and_visibility_use_the_model_queries(alice, alice_web) -> None:
    model_id = create_model(alice, meta={"name": "old"})
    token = page_token(alice_web)
    answer = alice_web.post(
        f"/models/{model_id}/rename",
        data={"name": "new name", "csrf_token": token},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/models/{model_id}?notice=renamed"
    assert ok(alice.get(f"/v1/models/{model_id}"))["meta"]["name"] == "new name"
    visibility = f"/models/{model_id}/visibility"
    alice_web.post(visibility, data={"public": "true", "csrf_token": token})
    assert ok(alice.get(f"/v1/models/{model_id}"))["public"] is True
    alice_web.post(visibility, data={"public": "false", "csrf_token": token})
    assert ok(alice.get(f"/v1/models/{model_id}"))["public"] is False
    assert "The model was renamed." in alice_web.get(f"/models/{model_id}?notice=renamed").text


def test_reset_and_delete_need_confirmation(alice, alice_web, app, tmp_path: Path) -> None:
    model_id = create_model(alice)
    ok(alice.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": epoch_metrics(0)}))
    path, _ = weights_file(tmp_path / "last.pt")
    ok(upload_weights(alice, model_id, path))
    token = page_token(alice_web)
    unconfirmed = alice_web.post(f"/models/{model_id}/reset", data={"csrf_token": token})
    assert unconfirmed.status_code == 422 and "tick the box" in unconfirmed.text
    alice_web.post(f"/models/{model_id}/reset", data={"csrf_token": token, "confirm": "yes"})
    record = ok(alice.get(f"/v1/models/{model_id}"))
    assert record["status"] == "new" and record["has_last_weights"] is False
    assert ok(alice.get(f"/v1/models/{model_id}/metrics")) == []
    assert (
        alice_web.post(f"/models/{model_id}/delete", data={"csrf_token": token}).status_code == 422
    )
    answer = alice_web.post(
        f"/models/{model_id}/delete",
        data={"csrf_token": token, "confirm": "yes", "hard": "yes"},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/models?notice=model-deleted"
    error(alice.get(f"/v1/models/{model_id}"), 404)
    with hub_state(app).db.read() as session:
        assert session.query(ModelRow).filter_by(id=model_id).first() is None


# --- API keys -----------------------------------------------------------------------------


def test_a_new_key_is_shown_once_and_works(app, alice_web) -> None:
    token = page_token(alice_web)
    created = alice_web.post("/settings/keys", data={"name": "laptop", "csrf_token": token})
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    key = re.search(r'<code id="new-key" class="key">(ul[0-9a-f]{40})</code>', created.text)
    assert key
    assert "laptop" in created.text
    api = TestClient(app, headers={"x-api-key": key.group(1)})
    assert ok(api.post("/v1/auth"))["name"] == "alice"
    again = alice_web.get("/settings").text
    assert key.group(1) not in again and key.group(1)[:8] in again


def test_a_new_key_is_also_shown_spelled_for_ultralytics_8_4(app, alice_web) -> None:
    created = alice_web.post(
        "/settings/keys", data={"name": "8.4", "csrf_token": page_token(alice_web)}
    )
    hub = re.search(r'<code id="new-key" class="key">(ul[0-9a-f]{40})</code>', created.text)
    platform = re.search(
        r'<code id="new-platform-key" class="key">(ul_[0-9a-f]{40})</code>', created.text
    )
    assert hub and platform and platform.group(1) == "ul_" + hub.group(1)[2:]
    assert (
        "yolo login" in created.text
        and "ULTRALYTICS_PLATFORM_URL=http://testserver" in created.text
    )
    answer = TestClient(app).get(
        "/api/account/summary", headers={"authorization": f"Bearer {platform.group(1)}"}
    )
    assert answer.status_code == 200 and answer.json()["username"] == "alice"


def test_revoking_a_key_from_settings_refuses_it_in_the_api(app, alice, alice_web) -> None:
    fresh = ok(alice.post("/v1/keys", json={"name": "ci"}))
    token = page_token(alice_web)
    answer = alice_web.post(
        f"/settings/keys/{fresh['id']}/revoke", data={"csrf_token": token}, follow_redirects=False
    )
    assert answer.headers["location"] == "/settings?notice=revoked"
    error(TestClient(app, headers={"x-api-key": fresh["key"]}).post("/v1/auth"), 401)
    assert "revoked" in alice_web.get("/settings").text


def test_revoking_the_sessions_own_key_signs_out(app, users, alice_web) -> None:
    settings = alice_web.get("/settings").text
    own = re.search(r'action="/settings/keys/([A-Za-z0-9]{20})/revoke"', settings)
    assert own
    answer = alice_web.post(
        f"/settings/keys/{own.group(1)}/revoke",
        data={"csrf_token": csrf_of(settings)},
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/login?signed_out=1"
    error(TestClient(app, headers={"x-api-key": users.alice.key}).post("/v1/auth"), 401)


def test_someone_elses_key_cannot_be_revoked(alice, bob, alice_web) -> None:
    bobs = ok(bob.get("/v1/keys"))[0]
    answer = alice_web.post(
        f"/settings/keys/{bobs['id']}/revoke", data={"csrf_token": page_token(alice_web)}
    )
    assert answer.status_code == 404
    ok(bob.post("/v1/auth"))


# --- route inventory ----------------------------------------------------------------------


def _calls(dependant) -> set:
    found = set()
    for sub in dependant.dependencies:
        found.add(sub.call)
        found |= _calls(sub)
    return found


def test_every_dashboard_route_needs_a_session_or_is_marked_public() -> None:
    routes = [route for router in web.ROUTERS for route in router.routes]
    assert len(routes) >= 20 and all(isinstance(route, APIRoute) for route in routes)
    public = set()
    for route in routes:
        assert not route.include_in_schema, route.path
        if route.endpoint in PUBLIC_ENDPOINTS:
            public |= {(method, route.path) for method in route.methods}
            assert not _calls(route.dependant) & web.PAGE_AUTH, route.path
        else:
            assert _calls(route.dependant) & web.PAGE_AUTH, route.path
    assert public == {("GET", "/login"), ("POST", "/login")}


def test_the_dashboard_is_not_in_the_api_description(app) -> None:
    with warnings.catch_warnings():  # the API's own duplicate operation ids are not ours
        warnings.simplefilter("ignore")
        paths = app.openapi()["paths"]
    assert not [
        p
        for p in paths
        if not p.startswith(("/v1/", "/api/", "/files/", "/healthz", "/model-", "/get-", "/qa/"))
    ]
