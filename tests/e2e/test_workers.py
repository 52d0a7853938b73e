"""`trainhub server --workers 2`: two processes on one port and one data directory.

Every request below opens its own connection, so the kernel spreads them over both processes:
a key's rate budget is one budget for both, every accepted epoch is stored exactly once, every
beat is counted for the same agent, and a revoked key is refused by both within a second.
"""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import RunningServer, start_server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    limits = {"TRAINHUB_RATE_LIMIT": "1000/second", "TRAINHUB_ANONYMOUS_RATE_LIMIT": "1000/second"}
    with start_server(tmp_path_factory.mktemp("workers"), "--workers", "2", extra_env=limits) as s:
        yield s


def fresh(hub: RunningServer, method: str, path: str, **kwargs) -> httpx.Response:
    """Send one request on a connection of its own (so either process may take it)."""
    headers = {"x-api-key": hub.keys["alice"], "connection": "close"}
    return httpx.request(method, hub.url + path, headers=headers, timeout=30, **kwargs)


def worker_pids(server: RunningServer) -> set[int]:
    """Return the pids of the processes uvicorn started under the server."""
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text()
    return {int(pid) for pid in children.split()}


def test_two_processes_serve_one_hub(hub: RunningServer) -> None:
    assert len(worker_pids(hub)) >= 2, hub.log()
    model_id = fresh(hub, "POST", "/v1/models", json={"meta": {"name": "w"}}).json()["data"]["id"]
    for epoch in range(60):
        metrics = {"metrics": {str(epoch): json.dumps({"loss": 1.0 / (epoch + 1)})}}
        assert fresh(hub, "POST", f"/v1/models/{model_id}", json=metrics).status_code == 200
    series = fresh(hub, "GET", f"/v1/models/{model_id}/metrics").json()["data"]
    assert [s["meta"]["name"] for s in series] == ["loss"]
    assert sorted(int(e) for e in series[0]["data"]) == list(range(60))
    agent = None
    for _ in range(20):
        beat = {"agent": "w", "agentId": agent, "interval": 30}
        answer = fresh(hub, "POST", f"/v1/agent/heartbeat/models/{model_id}", json=beat)
        assert answer.status_code == 200, answer.text
        agent = agent or answer.json()["data"]["agentId"]
        assert answer.json()["data"]["agentId"] == agent  # echoed, it stays the same agent
    record = fresh(hub, "GET", f"/v1/models/{model_id}").json()["data"]
    assert record["status"] == "training" and [a["id"] for a in record["agents"]] == [agent]


@pytest.fixture(scope="module")
def strict_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    limits = {"TRAINHUB_RATE_LIMIT": "20/minute", "TRAINHUB_ANONYMOUS_RATE_LIMIT": "20/minute"}
    folder = tmp_path_factory.mktemp("workers-limits")
    with start_server(folder, "--workers", "2", extra_env=limits) as server:
        yield server


def test_a_users_rate_budget_is_one_budget_for_both_processes(strict_hub: RunningServer) -> None:
    answers = [fresh(strict_hub, "GET", "/v1/models").status_code for _ in range(30)]
    assert answers.count(200) == 20 and answers.count(429) == 10, answers
    assert os.path.exists(strict_hub.data_dir / "ratelimits.shm")


def test_a_revoked_key_is_refused_by_both_processes_within_a_second(hub: RunningServer) -> None:
    """Each process caches keys for 1 s; a revocation answered by one must reach both."""
    created = fresh(hub, "POST", "/v1/keys", json={"name": "short-lived"}).json()["data"]
    key, key_id = created["key"], created["id"]

    def with_key(path: str) -> int:
        headers = {"x-api-key": key, "connection": "close"}
        return httpx.get(hub.url + path, headers=headers, timeout=30).status_code

    assert [with_key("/v1/models") for _ in range(20)] == [200] * 20  # cached by both now
    assert fresh(hub, "DELETE", f"/v1/keys/{key_id}").status_code == 200
    time.sleep(1.1)
    assert [with_key("/v1/models") for _ in range(20)] == [401] * 20
