"""Dashboard sessions live on the server: sign-out, expiry and key revocation end them at once.

A copied cookie is worth nothing once its session ended; the CSRF token belongs to one session
and changes at every sign-in; replicas share the sessions through the database; an open event
stream ends with its session.
"""

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from tests.conftest import make_settings
from tests.factories import Users, create_model, create_users, error, ok
from tests.integration.test_web import HTML, csrf_of, page_token, sign_in
from tests.integration.test_web_data import events
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.db.sessions import hash_token
from trainhub.server.db.tables import WebSessionRow, utcnow
from trainhub.server.state import hub_state
from trainhub.server.web import auth, csrf, live


@pytest.fixture
def alice_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.alice.key) as client:
        yield client


def copy_of(app: FastAPI, browser: TestClient, **headers: str) -> TestClient:
    """Return another client holding the same session cookie (a stolen or copied cookie)."""
    copy = TestClient(app, headers=headers or HTML)
    copy.cookies.set(auth.COOKIE_NAME, browser.cookies[auth.COOKIE_NAME])
    return copy


def is_signed_in(client: TestClient) -> bool:
    answer = client.get("/models", follow_redirects=False)
    assert answer.status_code in (200, 303), answer.text
    return answer.status_code == 200


def session_row(app: FastAPI, browser: TestClient) -> WebSessionRow:
    token = browser.cookies[auth.COOKIE_NAME]
    with hub_state(app).db.read() as session:
        return session.scalars(
            select(WebSessionRow).where(WebSessionRow.token_hash == hash_token(token))
        ).one()


def set_times(app: FastAPI, row_id: str, **times: Any) -> None:
    with hub_state(app).db.write() as session:
        session.execute(update(WebSessionRow).where(WebSessionRow.id == row_id).values(**times))


# --- sign-out and copied cookies ----------------------------------------------------------


def test_signing_out_ends_the_session_for_every_copy_of_the_cookie(app, alice, alice_web) -> None:
    model_id = create_model(alice)
    stolen = copy_of(app, alice_web)
    script = copy_of(app, alice_web, accept="application/json")
    token = page_token(alice_web)
    assert is_signed_in(stolen)
    answer = alice_web.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 303
    assert not is_signed_in(stolen)
    assert error(script.get(f"/models/{model_id}/chart.json"), 401)
    rename = stolen.post(
        f"/models/{model_id}/rename",
        data={"name": "taken over", "csrf_token": token},
        follow_redirects=False,
    )
    assert rename.headers["location"].startswith("/login")
    assert ok(alice.get(f"/v1/models/{model_id}"))["meta"]["name"] != "taken over"


def test_the_cookie_is_random_and_only_its_hash_is_stored(app, users, alice) -> None:
    first, second = sign_in(app, users.alice.key), sign_in(app, users.alice.key)
    values = [client.cookies[auth.COOKIE_NAME] for client in (first, second)]
    assert values[0] != values[1]
    key_ids = {key["id"] for key in ok(alice.get("/v1/keys"))}
    with hub_state(app).db.read() as session:
        rows = session.scalars(select(WebSessionRow)).all()
    assert {row.token_hash for row in rows} == {hash_token(value) for value in values}
    stored = [str(getattr(row, c.key)) for row in rows for c in WebSessionRow.__table__.columns]
    for value in values:
        assert not any(key_id in value for key_id in key_ids)
        assert not any(value in text for text in stored)


# --- CSRF tokens belong to one session -----------------------------------------------------


def test_the_csrf_token_changes_at_every_sign_in(app, users, alice) -> None:
    model_id = create_model(alice, meta={"name": "before"})
    first, second = sign_in(app, users.alice.key), sign_in(app, users.alice.key)
    tokens = page_token(first), page_token(second)
    assert tokens[0] != tokens[1]
    path = f"/models/{model_id}/rename"
    for browser, wrong in ((first, tokens[1]), (second, tokens[0])):
        answer = browser.post(path, data={"name": "x", "csrf_token": wrong})
        assert answer.status_code == 403
    assert ok(alice.get(f"/v1/models/{model_id}"))["meta"]["name"] == "before"
    answer = first.post(path, data={"name": "after", "csrf_token": tokens[0]})
    assert answer.status_code == 200
    assert ok(alice.get(f"/v1/models/{model_id}"))["meta"]["name"] == "after"


def test_signing_in_again_ends_the_session_the_browser_had(app, users) -> None:
    planted = sign_in(app, users.bob.key)  # e.g. a cookie someone else put in this browser
    old_value = planted.cookies[auth.COOKIE_NAME]
    browser = TestClient(app, headers=HTML)
    login_form = browser.get("/login").text
    browser.cookies.set(auth.COOKIE_NAME, old_value, domain="testserver.local")
    answer = browser.post(
        "/login",
        data={"api_key": users.alice.key, "csrf_token": csrf_of(login_form)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert browser.cookies[auth.COOKIE_NAME] != old_value
    assert "Signed in as <strong>alice</strong>" in browser.get("/models").text
    assert not is_signed_in(planted)


# --- key revocation, expiry --------------------------------------------------------------


def test_revoking_a_key_ends_every_session_of_that_key_only(app, users, alice) -> None:
    spare = ok(alice.post("/v1/keys", json={"name": "spare"}))
    doomed = [sign_in(app, spare["key"]), sign_in(app, spare["key"])]
    other = sign_in(app, users.alice.key)
    assert all(is_signed_in(browser) for browser in [*doomed, other])
    ok(alice.delete(f"/v1/keys/{spare['id']}"))
    assert not any(is_signed_in(browser) for browser in doomed)
    assert is_signed_in(other)


def test_a_session_idle_for_longer_than_the_idle_timeout_has_ended(app, alice_web) -> None:
    idle_s = hub_state(app).settings.web_session_idle_s
    row = session_row(app, alice_web)
    set_times(app, row.id, last_seen_at=utcnow() - timedelta(seconds=idle_s - 300))
    assert is_signed_in(alice_web)  # used within the timeout: still live, and seen now
    assert utcnow() - session_row(app, alice_web).last_seen_at < timedelta(seconds=60)
    set_times(app, row.id, last_seen_at=utcnow() - timedelta(seconds=idle_s + 1))
    assert not is_signed_in(alice_web)


def test_a_session_ends_at_its_absolute_expiry_however_busy(app, alice_web) -> None:
    row = session_row(app, alice_web)
    max_age_s = hub_state(app).settings.web_session_max_age_s
    assert row.expires_at - row.created_at == timedelta(seconds=max_age_s)
    set_times(app, row.id, expires_at=utcnow() - timedelta(seconds=1), last_seen_at=utcnow())
    assert not is_signed_in(alice_web)


def test_the_cookie_lives_as_long_as_the_session(app, users) -> None:
    browser = TestClient(app, headers=HTML)
    answer = browser.post(
        "/login",
        data={"api_key": users.alice.key, "csrf_token": csrf_of(browser.get("/login").text)},
        follow_redirects=False,
    )
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("trainhub_s"))
    assert f"Max-Age={hub_state(app).settings.web_session_max_age_s}" in cookie


# --- replicas --------------------------------------------------------------------------------


def test_replicas_share_sessions_and_a_sign_out_on_one_ends_it_on_all(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url)
    first, second = create_app(settings), create_app(settings)
    try:
        users = create_users(hub_state(first).db)
        browser = sign_in(first, users.alice.key)
        elsewhere = copy_of(second, browser)
        assert is_signed_in(elsewhere)
        token = page_token(elsewhere)
        answer = elsewhere.post("/logout", data={"csrf_token": token}, follow_redirects=False)
        assert answer.headers["location"] == "/login?signed_out=1"
        assert not is_signed_in(browser)
    finally:
        hub_state(first).db.dispose()
        hub_state(second).db.dispose()


# --- live streams end with their session ---------------------------------------------------


def test_signing_out_ends_an_open_event_stream(
    app, alice, alice_web, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The lifetime is long enough that only the sign-out can end the stream.
    monkeypatch.setattr(live, "STREAM_LIFETIME_S", 60.0)
    monkeypatch.setattr(live, "POLL_INTERVAL_S", 0.05)
    streaming, real_guarded = threading.Event(), live._guarded

    def guarded(*args: Any) -> live.Snapshot:
        snapshot = real_guarded(*args)
        streaming.set()
        return snapshot

    monkeypatch.setattr(live, "_guarded", guarded)
    other_tab = copy_of(app, alice_web)
    token = page_token(alice_web)

    def sign_out_while_streaming() -> None:
        if streaming.wait(timeout=30):
            other_tab.post("/logout", data={csrf.FIELD: token}, follow_redirects=False)

    signer = threading.Thread(target=sign_out_while_streaming)
    model_id = create_model(alice)
    signer.start()
    answer = alice_web.get(f"/models/{model_id}/events", headers={"accept": "text/event-stream"})
    signer.join()
    assert events(answer.text)[0][0] != "signed-out"  # the stream ran before the sign-out
    assert events(answer.text)[-1] == ("signed-out", {"location": "/login"})
