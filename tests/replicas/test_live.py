"""A dashboard open on B follows a run whose metrics go to A.

A browser signs in on A and opens the model page's event stream (web/live.py) on B: the session
lives in the database, so B knows it. The trainer then sends an epoch's metrics to A, and B's
stream must name that epoch within LIVE_DEADLINE_S.
"""

import json
import re
import time
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import httpx

from tests.replicas.stack import Replicas
from tests.servers import RunningServer

LIVE_DEADLINE_S = 5.0
HTML = {"accept": "text/html,application/xhtml+xml"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(server: RunningServer, key: str) -> str:
    """Sign a browser in on `server` with `key`; return its Cookie header."""
    with httpx.Client(base_url=server.url, headers=HTML, timeout=30) as browser:
        token = CSRF.search(browser.get("/login").text)
        assert token, "no CSRF field on the sign-in page"
        answer = browser.post(
            "/login", data={"api_key": key, "csrf_token": token[1]}, follow_redirects=False
        )
        assert answer.status_code == 303, answer.text
        return "; ".join(f"{name}={value}" for name, value in browser.cookies.items())


def events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """Yield (event, data) pairs from the lines of a text/event-stream."""
    name, data = "", ""
    for line in lines:
        if line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data += line.partition(":")[2].strip()
        elif not line and name:
            yield name, json.loads(data) if data else None
            name, data = "", ""


def send_epoch(server: RunningServer, key: str, model_id: str, epoch: int) -> None:
    metrics = {"metrics": {str(epoch): json.dumps({"train/loss": 1.0 / (epoch + 1)})}}
    answer = httpx.post(
        f"{server.url}/v1/models/{model_id}", json=metrics, headers={"x-api-key": key}, timeout=30
    )
    assert answer.status_code == 200, answer.text


def test_a_dashboard_open_on_b_updates_live_while_metrics_go_to_a(replicas: Replicas) -> None:
    key = replicas.new_user("watcher")
    created = httpx.post(
        f"{replicas.a.url}/v1/models",
        json={"meta": {"name": "live"}, "config": {"epochs": 10}},
        headers={"x-api-key": key},
        timeout=30,
    )
    model_id = created.json()["data"]["id"]
    send_epoch(replicas.a, key, model_id, 0)
    cookie = sign_in(replicas.a, key)
    headers = {"accept": "text/event-stream", "cookie": cookie}
    url = f"{replicas.b.url}/models/{model_id}/events"
    timeout = httpx.Timeout(30, read=LIVE_DEADLINE_S)
    seen: list[tuple[str, Any]] = []
    sent_at: float | None = None
    delay: float | None = None
    with (
        httpx.stream("GET", url, headers=headers, timeout=timeout) as stream,
        suppress(httpx.ReadTimeout),  # B sent nothing for a while: judged below
    ):
        assert stream.status_code == 200, stream.read()
        assert stream.headers["content-type"].startswith("text/event-stream")
        for name, data in events(stream.iter_lines()):
            seen.append((name, data))
            if sent_at is None and name == "model":  # the first snapshot is out: B streams
                send_epoch(replicas.a, key, model_id, 1)
                sent_at = time.monotonic()
            elif sent_at is not None and name == "metrics" and data["epoch"] == 1:
                delay = time.monotonic() - sent_at
                break
            if sent_at is not None and time.monotonic() - sent_at > LIVE_DEADLINE_S:
                break
    assert sent_at is not None, f"B's stream sent no snapshot of the model: {seen}"
    assert delay is not None, f"B's stream named no epoch 1 within {LIVE_DEADLINE_S} s: {seen}"
    assert delay <= LIVE_DEADLINE_S, f"epoch 1 reached B's stream {delay:.2f} s after A had it"
    assert ("metrics", 0) in [(n, d.get("epoch")) for n, d in seen if isinstance(d, dict)]
