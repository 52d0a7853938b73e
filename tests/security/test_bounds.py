"""Resource bounds with a safe default and a clear 4xx: form parts, body deadline, keys, agents.

Each one was unbounded: a multipart body could open a temp file per part, a client trickling
bytes could hold a request forever, a user could mint keys for fresh rate budgets, and a client
that never sends back its agentId grew a model's agents (and the cost of its beats) without end.
"""

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.asgi import call
from tests.conftest import make_settings
from tests.factories import (
    Users,
    create_model,
    create_users,
    error,
    multipart_body,
    ok,
)
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.ratelimit import RateLimiter
from trainhub.server.state import hub_state
from trainhub.server.storage.local import LocalStorage


@pytest.fixture
def bounded(tmp_path: Path, database_url: str) -> Iterator[tuple[FastAPI, Users]]:
    """An app with small bounds, so tests reach them quickly."""
    settings = make_settings(
        tmp_path,
        database_url,
        max_form_parts=8,
        body_idle_timeout_s=1.0,
        body_deadline_s=2.0,
        json_deadline_s=2.0,
        max_keys_per_user=3,
        max_agents_per_model=4,
        rate_limit="6/minute",
    )
    app = create_app(settings)
    try:
        yield app, create_users(hub_state(app).db)
    finally:
        hub_state(app).db.dispose()


def test_a_form_with_many_file_parts_opens_one_temp_file_and_is_refused(
    app: FastAPI, alice: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[object] = []
    create_writer = LocalStorage.create_writer

    def counting(self: LocalStorage):  # counts the real writers; behaviour is unchanged
        writer = create_writer(self)
        opened.append(writer)
        return writer

    monkeypatch.setattr(LocalStorage, "create_writer", counting)
    dataset = ok(alice.post("/v1/datasets", json={"meta": {"name": "d"}}))["id"]
    files = {f"part{i}.zip": b"PK" for i in range(500)}
    body = multipart_body("b0undary", {}, files)
    answer = alice.post(
        f"/v1/datasets/{dataset}/upload",
        content=body,
        headers={"content-type": "multipart/form-data; boundary=b0undary"},
    )
    error(answer, 422)
    assert len(opened) <= 1
    fields = {f"field{i}": "x" for i in range(100)}
    answer = alice.post(
        f"/v1/models/{create_model(alice)}/upload",
        content=multipart_body("b0undary", fields),
        headers={"content-type": "multipart/form-data; boundary=b0undary"},
    )
    assert "more than 16 parts" in error(answer, 400)


def test_the_parts_bound_is_a_setting(bounded: tuple[FastAPI, Users]) -> None:
    app, users = bounded
    with TestClient(app, headers={"x-api-key": users.bob.key}) as bob:
        fields = {f"field{i}": "x" for i in range(9)}
        answer = bob.post(
            f"/v1/models/{create_model(bob)}/upload",
            content=multipart_body("b0undary", fields),
            headers={"content-type": "multipart/form-data; boundary=b0undary"},
        )
        assert "more than 8 parts" in error(answer, 400)


def test_a_body_trickled_inside_the_idle_timeout_ends_at_the_deadline(
    bounded: tuple[FastAPI, Users],
) -> None:
    app, users = bounded
    with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
        model_id = create_model(alice)
    headers = {
        "x-api-key": users.alice.key,
        "content-type": "multipart/form-data; boundary=b0undary",
        "content-length": "100000",
    }
    chunks = [b"--b0undary\r\n"] + [b"x" * 10] * 12  # a chunk every 0.4 s, for 5 s
    answer = asyncio.run(
        call(app, "POST", f"/v1/models/{model_id}/upload", headers, chunks, pause_s=0.4)
    )
    assert answer.status == 408, answer
    assert "longer than 2 s" in answer.json()["message"]
    json_headers = {"x-api-key": users.alice.key, "content-type": "application/json"}
    answer = asyncio.run(call(app, "POST", "/v1/models", json_headers, [b" "] * 12, pause_s=0.4))
    assert answer.status == 408, answer
    assert not list((hub_state(app).settings.data_dir / "blobs" / "tmp").glob(".upload-*"))


def test_a_user_holds_a_bounded_number_of_keys(bounded: tuple[FastAPI, Users]) -> None:
    app, users = bounded
    with TestClient(app, headers={"x-api-key": users.bob.key}) as bob:
        ok(bob.post("/v1/keys", json={"name": "two"}))
        third = ok(bob.post("/v1/keys", json={"name": "three"}))
        message = error(bob.post("/v1/keys", json={"name": "four"}), 409)
        assert "3 active API keys" in message and "revoke" in message
        ok(bob.delete(f"/v1/keys/{third['id']}"))
        ok(bob.post("/v1/keys", json={"name": "four"}))


def test_all_keys_of_a_user_share_one_rate_budget(bounded: tuple[FastAPI, Users]) -> None:
    app, users = bounded
    with TestClient(app, headers={"x-api-key": users.bob.key}) as bob:
        second = ok(bob.post("/v1/keys", json={}))["key"]  # request 1 of 6
        with TestClient(app, headers={"x-api-key": second}) as other:
            for client in (bob, other, bob, other, bob):  # requests 2 to 6
                ok(client.get("/v1/models"))
            answer = other.get("/v1/models")
            assert answer.status_code == 429
            assert int(answer.headers["retry-after"]) >= 1
        with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
            ok(alice.get("/v1/models"))  # another user has a budget of their own


def test_beats_without_an_agent_id_keep_a_models_agents_bounded(
    bounded: tuple[FastAPI, Users],
) -> None:
    app, users = bounded
    app.state.hub = replace(hub_state(app), rate_limiter=RateLimiter("1000/second", "1000/second"))
    with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
        model_id = create_model(alice)
        beat = f"/v1/agent/heartbeat/models/{model_id}"
        ids = [ok(alice.post(beat, json={"agent": "wrk"}))["agentId"] for _ in range(30)]
        names = [f"host-{i}" for i in range(10)]
        ids += [ok(alice.post(beat, json={"agent": name}))["agentId"] for name in names]
        agents = ok(alice.get(f"/v1/models/{model_id}"))["agents"]
    assert len(agents) == 4
    assert len(set(ids[:30])) == 4  # four fresh agents, then the cap re-identifies "wrk"
    assert {a["name"] for a in agents} == set(names[-4:])  # newest names replaced the oldest
    echoed = agents[0]["id"]
    with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
        again = ok(alice.post(beat, json={"agent": "x", "agentId": echoed}))["agentId"]
    assert again == echoed
