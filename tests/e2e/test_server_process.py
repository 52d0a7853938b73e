"""`trainhub server` as a user starts it: first-start admin key, start-up facts, clean stop."""

import signal
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, spawn_server

pytestmark = pytest.mark.e2e


def test_first_start_creates_an_admin_and_prints_its_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = spawn_server(data_dir, free_port())
    try:
        log = server.log()
        key = log.split("Its API key (shown only once):")[1].split()[0]
        answer = httpx.post(f"{server.url}/v1/auth", headers={"x-api-key": key}).json()
        assert answer["data"]["name"] == "admin" and answer["data"]["isAdmin"] is True
        for fact in (
            f"public URL {server.url}",
            "database: sqlite:///",
            "storage: local folder",
            f"export ULTRALYTICS_HUB_API={server.url}",
            f"export ULTRALYTICS_HUB_WEB={server.url}",
        ):
            assert fact in log, fact
    finally:
        server.kill(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so supervisors see why it stopped
    assert server.proc.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in server.log()
    restarted = spawn_server(data_dir, free_port())
    try:
        assert "First start" not in restarted.log()
        answer = httpx.post(f"{restarted.url}/v1/auth", headers={"x-api-key": key}).json()
        assert answer["success"] is True
    finally:
        restarted.kill(signal.SIGTERM)


def test_health_answers_while_the_server_runs(tmp_path: Path) -> None:
    server = spawn_server(tmp_path / "data", free_port())
    try:
        assert httpx.get(f"{server.url}/healthz").json()["data"] == {
            "database": "ok",
            "storage": "ok",
        }
        assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"] == "trainhub"
    finally:
        server.kill(signal.SIGTERM)
