"""A resumable upload whose connection drops halfway resumes where the server's bytes end."""

import base64
import hashlib
import os
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.servers import start_server

pytestmark = pytest.mark.e2e
TUS = {"Tus-Resumable": "1.0.0"}


def send_half_then_drop(url: str, key: str, data: bytes) -> None:
    """PATCH `data` from offset 0 over a raw socket, but stop after half and close."""
    parts = urlsplit(url)
    head = (
        f"PATCH {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nx-api-key: {key}\r\n"
        f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n"
        f"Content-Type: application/offset+octet-stream\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(head.encode())
        sock.sendall(data[: len(data) // 2])
        time.sleep(0.5)


def test_a_dropped_upload_resumes_from_the_acknowledged_offset(tmp_path: Path) -> None:
    data = os.urandom(8 * 1024 * 1024)
    sha256 = hashlib.sha256(data).hexdigest()
    with (
        start_server(tmp_path) as hub,
        httpx.Client(base_url=hub.url, headers={"x-api-key": hub.keys["alice"]}, timeout=30) as api,
    ):
        model_id = api.post("/v1/models", json={"meta": {"name": "drop"}}).json()["data"]["id"]
        meta = {"modelId": model_id, "type": "final", "epoch": "0", "map": "0.1", "sha256": sha256}
        encoded = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())
        created = api.post(
            "/v1/uploads",
            headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": encoded},
        )
        location = created.headers["location"]
        send_half_then_drop(location, hub.keys["alice"], data)
        deadline = time.monotonic() + 10
        offset = 0
        while time.monotonic() < deadline and offset == 0:
            offset = int(api.head(location, headers=TUS).headers["upload-offset"])
            time.sleep(0.1)
        assert 0 < offset <= len(data) // 2, hub.log()
        resumed = api.patch(
            location,
            content=data[offset:],
            headers={
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert resumed.status_code == 204, resumed.text
        record = api.get(f"/v1/models/{model_id}").json()["data"]
        weights = httpx.get(record["weights"], timeout=30)
        assert hashlib.sha256(weights.content).hexdigest() == sha256
        resent = len(data) - offset
        assert resent < len(data) * 0.6  # only the lost half (plus what was in flight) went again
