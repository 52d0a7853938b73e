"""`trainhub server --log-format json`: every line a process prints is one JSON object, redacted."""

import json
import signal
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, spawn_server

pytestmark = pytest.mark.e2e


def test_json_logs_are_one_redacted_object_a_line(tmp_path: Path) -> None:
    server = spawn_server(tmp_path / "data", free_port(), None, "--log-format", "json")
    try:
        key = "ul" + "0123456789abcdef" * 2 + "01234567"
        httpx.get(f"{server.url}/v1/models?api_key={key}")
        httpx.get(f"{server.url}/files/1234567890.-.{'A' * 43}/x/best.pt/y.pt")
    finally:
        server.kill(signal.SIGTERM)
    lines = [line for line in server.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # raises on any line that is not JSON
    access = [r for r in records if r.get("logger") == "uvicorn.access"]
    assert {r["method"] for r in access} == {"GET"}
    assert any(r["path"] == "/v1/models?api_key=[redacted]" and r["status"] == 401 for r in access)
    assert any(r["path"].startswith("/files/[redacted]/") for r in access)
    assert any(
        r.get("logger") == "trainhub.cli.admin" and "storage:" in r["message"] for r in records
    )
    assert any("key" in r and r["key"].startswith("ul") for r in records)  # the first admin's
    assert key not in server.log()
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records if "logger" in r)
