"""A client that knows one URL, a round-robin proxy's, trains a run across both replicas.

The client speaks raw HUB v1 as hub-sdk does, one connection per request, so the proxy
(tests/replicas/proxy.py) hands each request to the other replica than the one before: the
agent id a heartbeat got from one replica is echoed to the other, epochs land on both, the
weights go to one and come back from both. The run must read back as if one server had it all.
"""

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.replicas.proxy import start_proxy
from tests.replicas.stack import Replicas

EPOCHS = 6


def test_a_client_behind_a_round_robin_proxy_trains_one_run_on_both_replicas(
    replicas: Replicas, tmp_path: Path
) -> None:
    key = replicas.new_user("round-robin")
    upstreams = [("127.0.0.1", urlsplit(s.url).port or 80) for s in (replicas.a, replicas.b)]
    best = os.urandom(200_000)
    with start_proxy(upstreams) as proxy:

        def call(method: str, path: str, **kwargs) -> httpx.Response:
            headers = {"x-api-key": key, "connection": "close"}  # a new connection each time
            answer = httpx.request(method, proxy.url + path, headers=headers, timeout=30, **kwargs)
            assert answer.status_code == 200, (method, path, answer.text)
            return answer

        created = call("POST", "/v1/models", json={"meta": {"name": "rr"}, "config": {}})
        model_id = created.json()["data"]["id"]
        agents = []
        for epoch in range(EPOCHS):
            beat = {"agent": "rr", "agentId": agents[-1] if agents else None, "interval": 30}
            answer = call("POST", f"/v1/agent/heartbeat/models/{model_id}", json=beat)
            agents.append(answer.json()["data"]["agentId"])
            metrics = {str(epoch): json.dumps({"loss": 1.0 / (epoch + 1)})}
            call("POST", f"/v1/models/{model_id}", json={"type": "metrics", "metrics": metrics})
        call(
            "POST",
            f"/v1/models/{model_id}/upload",
            data={"epoch": str(EPOCHS - 1), "type": "final", "map": "0.5"},
            files={"best.pt": ("best.pt", best)},
        )
        record = call("GET", f"/v1/models/{model_id}").json()["data"]
        series = call("GET", f"/v1/models/{model_id}/metrics").json()["data"]
        link = urlsplit(record["weights"]).path
        downloads = [httpx.get(proxy.url + link, timeout=30) for _ in range(2)]  # A and B
        counts = list(proxy.counts)

    assert sum(counts) == 2 * EPOCHS + 6 and abs(counts[0] - counts[1]) <= 1, counts
    assert set(agents) == {agents[0]}, agents  # one agent, whichever replica answered
    assert [a["id"] for a in record["agents"]] == [agents[0]]
    assert record["status"] == "trained", record
    assert [s["meta"]["name"] for s in series] == ["loss"]
    assert series[0]["data"] == {str(e): 1.0 / (e + 1) for e in range(EPOCHS)}
    for download in downloads:
        assert download.status_code == 200, download.text
        assert hashlib.sha256(download.content).digest() == hashlib.sha256(best).digest()
