"""Admission control (server/admission.py): never more than the cap inside, no slot ever lost."""

import asyncio
import json
import random

import pytest
from starlette.types import Message, Receive, Scope, Send

from trainhub.server.admission import Admission


def http_scope(path: str = "/v1/models", method: str = "GET") -> Scope:
    return {"type": "http", "method": method, "path": path, "headers": []}


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Recorder:
    """The answer one request got."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.body = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = dict(message["headers"])
        else:
            self.body += message.get("body", b"")


def test_at_most_the_cap_runs_and_every_slot_comes_back() -> None:
    inside = 0
    most_inside = 0
    rng = random.Random(20261204)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal inside, most_inside
        inside += 1
        most_inside = max(most_inside, inside)
        await asyncio.sleep(rng.uniform(0, 0.02))
        inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    admission = Admission(app, max_in_flight=3, wait_s=0.01)

    async def one() -> int | None:
        answer = Recorder()
        await admission(http_scope(), no_body, answer)
        return answer.status

    async def run() -> list[int | None]:
        statuses: list[int | None] = []
        for _ in range(10):  # waves of requests, so waits both run out and are served
            statuses += await asyncio.gather(*(one() for _ in range(40)))
        return statuses

    statuses = asyncio.run(run())
    assert most_inside == 3
    assert set(statuses) == {200, 503}, "the waves should both overflow and get through"
    assert statuses.count(503) == admission.refused
    assert admission.in_flight == 0, "a slot was lost"
    assert not admission._waiters


def test_a_refusal_is_json_with_retry_after_and_health_is_never_refused() -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/hold":
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    admission = Admission(app, max_in_flight=1, wait_s=0.05)

    async def run() -> tuple[Recorder, Recorder, Recorder]:
        held = asyncio.create_task(admission(http_scope("/hold"), no_body, Recorder()))
        await asyncio.sleep(0)
        refused, health = Recorder(), Recorder()
        await admission(http_scope(), no_body, refused)
        await admission(http_scope("/healthz"), no_body, health)
        release.set()
        await held
        after = Recorder()
        await admission(http_scope(), no_body, after)
        return refused, health, after

    refused, health, after = asyncio.run(run())
    assert refused.status == 503
    assert refused.headers[b"retry-after"] == b"1"
    assert refused.headers[b"content-type"] == b"application/json"
    assert json.loads(refused.body)["success"] is False
    assert health.status == 200
    assert after.status == 200
    assert admission.in_flight == 0


def test_an_app_that_fails_gives_its_slot_back() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    admission = Admission(app, max_in_flight=1, wait_s=0)

    async def run() -> None:
        for _ in range(3):
            with pytest.raises(RuntimeError):
                await admission(http_scope(), no_body, Recorder())

    asyncio.run(run())
    assert admission.in_flight == 0
    assert admission.refused == 0
