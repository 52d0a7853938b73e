"""The dashboard bounds what one user can cost: page and chart-data rates, open live streams.

Past a limit the answer is 429 with Retry-After: an error page for a browser navigating, the JSON
ErrorBody for a script. Live streams are counted while they are open, across the process (and
across replicas through Redis); a stream that ends gives its slot back. Streams are held open
through a real uvicorn server on a Unix socket, because the in-process TestClient reads a whole
response before it returns.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from tests.conftest import make_settings
from tests.factories import create_model, create_users
from tests.integration.test_web import sign_in
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state
from trainhub.server.web import auth
from trainhub.server.web.streams import MemorySlots, RedisSlots

REDIS_URL = "redis://127.0.0.1:6379"
SCRIPT = {"accept": "application/json"}
EVENTS = {"accept": "text/event-stream"}
RELEASE_DEADLINE_S = 30.0  # generous: a closed stream is noticed within a poll, about 1 s


@contextmanager
def limited_app(tmp_path: Path, database_url: str, **limits: Any) -> Iterator[FastAPI]:
    application = create_app(make_settings(tmp_path, database_url, **limits))
    try:
        yield application
    finally:
        hub_state(application).db.dispose()


def session_cookie(browser: TestClient) -> dict[str, str]:
    return {"cookie": f"{auth.COOKIE_NAME}={browser.cookies[auth.COOKIE_NAME]}"}


def assert_retry_after(answer: Any) -> None:
    assert int(answer.headers["Retry-After"]) >= 1


# --- request rates -------------------------------------------------------------------------


def test_past_the_page_rate_a_browser_gets_an_error_page_and_a_script_json(
    tmp_path: Path, database_url: str
) -> None:
    with limited_app(tmp_path, database_url, web_rate_limit="4/minute") as app:
        users = create_users(hub_state(app).db)
        browser = sign_in(app, users.alice.key)
        assert [browser.get("/models").status_code for _ in range(4)] == [200] * 4
        page = browser.get("/models")
        assert page.status_code == 429
        assert page.headers["content-type"].startswith("text/html")
        assert "Too many requests" in page.text and "wait" in page.text
        assert_retry_after(page)
        script = TestClient(app, headers={**SCRIPT, **session_cookie(browser)})
        answer = script.get("/settings")
        assert answer.status_code == 429
        assert answer.json()["success"] is False and "too many" in answer.json()["message"]
        assert_retry_after(answer)
        bob = sign_in(app, users.bob.key)  # the limit is per user
        assert bob.get("/models").status_code == 200


def test_chart_data_has_its_own_tighter_limit(tmp_path: Path, database_url: str) -> None:
    with limited_app(tmp_path, database_url, web_chart_rate_limit="2/minute") as app:
        users = create_users(hub_state(app).db)
        model_id = create_model(TestClient(app, headers={"x-api-key": users.alice.key}))
        browser = sign_in(app, users.alice.key)
        script = TestClient(app, headers={**SCRIPT, **session_cookie(browser)})
        assert script.get(f"/models/{model_id}/chart.json").status_code == 200
        assert script.get("/compare/chart.json", params={"ids": model_id, "metric": "m"}).is_success
        refused = script.get(f"/models/{model_id}/chart.json")
        assert refused.status_code == 429 and refused.json()["success"] is False
        assert_retry_after(refused)
        assert script.get("/compare/chart.json", params={"metric": "m"}).status_code == 429
        assert browser.get(f"/models/{model_id}").status_code == 200  # pages are not charts


def test_limits_that_are_not_limits_are_refused_at_start() -> None:
    for bad in ({"web_rate_limit": "lots"}, {"web_chart_rate_limit": ""}):
        with pytest.raises(ValidationError, match="is not a rate limit"):
            Settings(**bad)
    with pytest.raises(ValidationError):
        Settings(max_live_streams_per_user=0)


# --- live streams --------------------------------------------------------------------------


@contextmanager
def served(app: FastAPI, socket: Path) -> Iterator[httpx.Client]:
    """Serve `app` with uvicorn on a Unix socket in a thread; yield a client bound to it."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, uds=str(socket), log_level="warning", lifespan="off", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    transport = httpx.HTTPTransport(uds=str(socket))
    client = httpx.Client(transport=transport, base_url="http://testserver", timeout=30)
    try:
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)


class Streams:
    """Opens live streams through a served app and keeps them open until closed."""

    def __init__(self, client: httpx.Client, stack: ExitStack) -> None:
        self.client = client
        self.stack = stack
        self.readers: list[Iterator[bytes]] = []  # a reader dropped would close its stream

    def open(self, cookie: dict[str, str], path: str = "/models/events") -> httpx.Response:
        """Start a stream; once it answered 200 and sent its first bytes, return it open."""
        answer = self.stack.enter_context(
            self.client.stream("GET", path, headers={**EVENTS, **cookie})
        )
        if answer.status_code == 200:
            self.readers.append(answer.iter_bytes())
            assert next(self.readers[-1]).startswith(b"retry: ")
        else:
            answer.read()
        return answer

    def open_when_free(self, cookie: dict[str, str]) -> httpx.Response:
        """Start a stream, retrying while 429 says every slot is still taken."""
        deadline = time.monotonic() + RELEASE_DEADLINE_S
        while True:
            answer = self.open(cookie)
            if answer.status_code != 429 or time.monotonic() > deadline:
                return answer
            answer.close()
            time.sleep(0.2)


def test_open_live_streams_are_capped_per_user_and_a_closed_one_frees_its_slot(
    tmp_path: Path, database_url: str
) -> None:
    with (
        limited_app(tmp_path, database_url, max_live_streams_per_user=2) as app,
        ExitStack() as stack,
    ):
        users = create_users(hub_state(app).db)
        alice = session_cookie(sign_in(app, users.alice.key))
        bob = session_cookie(sign_in(app, users.bob.key))
        streams = Streams(stack.enter_context(served(app, tmp_path / "hub.sock")), stack)
        first, second = streams.open(alice), streams.open(alice)
        assert (first.status_code, second.status_code) == (200, 200)
        refused = streams.open(alice)
        assert refused.status_code == 429
        assert refused.json()["success"] is False and "2 live pages" in refused.json()["message"]
        assert_retry_after(refused)
        assert streams.open(bob).status_code == 200  # the cap is per user
        first.close()
        assert streams.open_when_free(alice).status_code == 200
        assert streams.open(alice).status_code == 429  # still two open: the count is exact


def test_a_stream_refused_for_a_model_page_also_answers_429(
    tmp_path: Path, database_url: str
) -> None:
    with limited_app(tmp_path, database_url, max_live_streams_per_user=1) as app, ExitStack() as s:
        users = create_users(hub_state(app).db)
        model_id = create_model(TestClient(app, headers={"x-api-key": users.alice.key}))
        alice = session_cookie(sign_in(app, users.alice.key))
        streams = Streams(s.enter_context(served(app, tmp_path / "hub.sock")), s)
        assert streams.open(alice, f"/models/{model_id}/events").status_code == 200
        assert streams.open(alice, f"/models/{model_id}/events").status_code == 429
        assert streams.open(alice).status_code == 429


def test_replicas_count_a_users_streams_together_through_redis(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path, database_url, redis_url=REDIS_URL, max_live_streams_per_user=2
    )
    first, second = create_app(settings), create_app(settings)
    try:
        with ExitStack() as stack:
            users = create_users(hub_state(first).db)
            alice = session_cookie(sign_in(first, users.alice.key))
            one = Streams(stack.enter_context(served(first, tmp_path / "one.sock")), stack)
            two = Streams(stack.enter_context(served(second, tmp_path / "two.sock")), stack)
            on_one, on_two = one.open(alice), two.open(alice)
            assert (on_one.status_code, on_two.status_code) == (200, 200)
            assert one.open(alice).status_code == 429
            assert two.open(alice).status_code == 429
            on_two.close()
            assert one.open_when_free(alice).status_code == 200
    finally:
        hub_state(first).db.dispose()
        hub_state(second).db.dispose()


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_a_slot_whose_release_was_lost_frees_itself_after_its_lifetime(kind: str) -> None:
    slots = MemorySlots(1) if kind == "memory" else RedisSlots(1, REDIS_URL)
    user_id = f"lost-release-{time.monotonic_ns()}"
    lost = slots.acquire(user_id, lifetime_s=0.2)
    assert lost is not None
    assert slots.acquire(user_id, lifetime_s=60) is None
    deadline = time.monotonic() + RELEASE_DEADLINE_S
    taken = None
    while taken is None and time.monotonic() < deadline:
        time.sleep(0.1)
        taken = slots.acquire(user_id, lifetime_s=60)
    assert taken is not None
    slots.release(user_id, taken)
    slots.release(user_id, lost)  # releasing twice, or after expiry, is harmless
    assert slots.acquire(user_id, lifetime_s=60) is not None
