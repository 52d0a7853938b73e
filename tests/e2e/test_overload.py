"""Overload degrades, it does not break (docs/performance.md, "Overload").

Against real server processes: a hub whose request slots are all taken answers 503 with
Retry-After at once (and still answers /healthz), a request that waits gets the first slot that
frees, and a PostgreSQL database frozen for 5 s (every byte held by `FaultProxy`) ends in
retries of a real trainer, with every epoch stored exactly once.
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.faults import (
    FaultProxy,
    Trainer,
    assert_metrics_exactly,
    create_model,
    hub_metrics,
)
from tests.e2e.test_faults import EPOCHS, assert_trained_with, say, trainer_args
from tests.servers import RunningServer, free_port, run_cli, spawn_server, start_server

# serial: the PostgreSQL pause is timed against a training run
pytestmark = [pytest.mark.e2e, pytest.mark.serial]


@contextmanager
def slot_taken(url: str, key: str) -> Iterator[socket.socket]:
    """Hold one request slot: a JSON POST whose body never finishes arriving (until closed)."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    held = socket.create_connection((host, port), timeout=10)
    head = (
        f"POST /v1/models HTTP/1.1\r\nHost: {host}:{port}\r\nx-api-key: {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    )
    held.sendall(head.encode())
    try:
        yield held
    finally:
        held.close()


def wait_until_busy(url: str, key: str) -> httpx.Response:
    """Send GETs until one is refused for want of a slot (the held POST got in first)."""
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=20) as api:
        while time.monotonic() < deadline:
            answer = api.get("/v1/models")
            if answer.status_code == 503:
                return answer
            time.sleep(0.05)
    raise AssertionError("the hub never ran out of slots with one request held")


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {"TRAINHUB_MAX_REQUESTS_IN_FLIGHT": "1", "TRAINHUB_ADMISSION_WAIT_S": "0.3"}
    with start_server(tmp_path_factory.mktemp("overload"), extra_env=env) as server:
        yield server


def test_a_hub_out_of_slots_answers_503_with_retry_after_and_still_answers_healthz(
    one_slot: RunningServer,
) -> None:
    key = one_slot.keys["alice"]
    with slot_taken(one_slot.url, key):
        refused = wait_until_busy(one_slot.url, key)
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"] == "application/json"
        assert refused.json()["success"] is False
        assert "busy" in refused.json()["message"]
        assert httpx.get(f"{one_slot.url}/healthz", timeout=20).status_code == 200
    # the held request ended with its connection: the slot is free again
    with httpx.Client(base_url=one_slot.url, headers={"x-api-key": key}, timeout=20) as api:
        deadline = time.monotonic() + 30
        while (answer := api.get("/v1/models")).status_code == 503:
            assert time.monotonic() < deadline, "the slot of a closed request never came back"
            time.sleep(0.05)
        assert answer.status_code == 200


def test_a_request_that_waits_gets_the_slot_that_frees(tmp_path: Path) -> None:
    env = {"TRAINHUB_MAX_REQUESTS_IN_FLIGHT": "1", "TRAINHUB_ADMISSION_WAIT_S": "10"}
    with start_server(tmp_path, extra_env=env) as server:
        key = server.keys["alice"]
        answers: list[int] = []
        with slot_taken(server.url, key) as held:
            time.sleep(0.5)  # the held POST is inside the app, reading its body

            def list_models() -> None:
                with httpx.Client(headers={"x-api-key": key}, timeout=30) as api:
                    answers.append(api.get(f"{server.url}/v1/models").status_code)

            waiting = threading.Thread(target=list_models)
            waiting.start()
            time.sleep(0.5)
            assert answers == [], "the second request did not wait for the slot"
            held.sendall(b"}" + b" " * 998)  # the held POST ends (a 4xx for its empty model)
            waiting.join(timeout=30)
        assert answers == [200]


@pytest.mark.timeout(300)
def test_postgresql_frozen_for_5_s_ends_in_retries_not_lost_data(
    tmp_path: Path, make_postgres_database
) -> None:
    database = make_postgres_database()
    parts = urlsplit(database.replace("postgresql+psycopg://", "http://"))
    with FaultProxy(target_port=parts.port or 5432) as proxy:
        proxied = database.replace(f":{parts.port}/", f":{proxy.port}/")
        env = {"TRAINHUB_DATABASE_URL": proxied}
        data_dir = tmp_path / "hub-data"
        data_dir.mkdir()
        key = run_cli("users", "create", "alice", "--init", "--admin", data_dir=data_dir, env=env)
        key = key.strip().splitlines()[-1].strip()
        server = spawn_server(data_dir, free_port(), env)
        try:
            model_id = create_model(server.url, key, "frozen database")
            args = trainer_args(server.url, key, model_id, tmp_path, "--metrics-interval", "0.2")
            trainer = Trainer(args, tmp_path / "trainer.log")
            try:
                trainer.wait_for("ready", 120)
                trainer.wait_for("epoch", 60, lambda e: e["epoch"] >= 10)
                proxy.pause(5)
                done = trainer.wait_for("done", 280)
                assert trainer.wait(60) == 0, trainer.log()
            finally:
                trainer.close()
            refused = _count_503(server.url, key)
            say(f"database frozen 5 s: the hub answered {refused} requests 503")
            assert refused > 0, "no request was refused while the database was frozen"
            assert done["drained"], (done, trainer.log())
            assert_metrics_exactly(hub_metrics(server.url, key, model_id), range(EPOCHS))
            assert_trained_with(server.url, key, model_id, done["sha256"])
        finally:
            server.kill()


def _count_503(url: str, admin_key: str) -> int:
    """Return how many requests the hub answered 503, from its own /metrics."""
    text = httpx.get(f"{url}/metrics", headers={"x-api-key": admin_key}, timeout=20).text
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("trainhub_http_requests_total{") and 'status="503"' in line
    )
