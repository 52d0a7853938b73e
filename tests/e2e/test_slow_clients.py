"""Slow and stalled clients against a real `trainhub server` (docs/security.md §2.6).

uvicorn puts no deadline on reading a request body; trainhub waits at most
TRAINHUB_BODY_IDLE_TIMEOUT_S for the next chunk, answers 408, and deletes the upload's temp file.
A raw socket sends the headers and half of a multipart weights upload, then goes quiet.
"""

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.servers import RunningServer, start_server
from trainhub.server.bodies import BATCH_BYTES

# serial: the 408 must come within ANSWER_WITHIN_S of a stall, measured by the wall clock.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]
IDLE_TIMEOUT_S = 2
ANSWER_WITHIN_S = IDLE_TIMEOUT_S + 8
BOUNDARY = "stalled-client-boundary"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    extra_env = {"TRAINHUB_BODY_IDLE_TIMEOUT_S": str(IDLE_TIMEOUT_S)}
    with start_server(tmp_path_factory.mktemp("slow"), extra_env=extra_env) as running:
        yield running


@pytest.fixture(scope="module")
def model_id(server: RunningServer) -> str:
    response = httpx.post(
        f"{server.url}/v1/models",
        json={"meta": {"name": "slow"}},
        headers={"x-api-key": server.keys["alice"]},
    )
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["id"])


def temp_dir(server: RunningServer) -> Path:
    return server.data_dir / "blobs" / "tmp"


def temp_files(server: RunningServer) -> list[str]:
    return sorted(p.name for p in temp_dir(server).iterdir())


def open_stalled_upload(server: RunningServer, model_id: str) -> socket.socket:
    """Send the headers and the first half of a weights upload, then nothing more.

    The half is larger than the server's write batch, so part of it reaches storage.
    """
    first_half = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="epoch"\r\n\r\n0\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="type"\r\n\r\nepoch\r\n'
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="last.pt"; filename="last.pt"'
        "\r\n\r\n"
    ).encode() + b"\x00" * (BATCH_BYTES + 64 * 1024)
    url = urlsplit(server.url)
    head = (
        f"POST /v1/models/{model_id}/upload HTTP/1.1\r\n"
        f"Host: {url.netloc}\r\n"
        f"x-api-key: {server.keys['alice']}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {2 * len(first_half)}\r\n\r\n"
    ).encode()
    sock = socket.create_connection((url.hostname, url.port), timeout=ANSWER_WITHIN_S)
    sock.sendall(head + first_half)
    return sock


def read_answer(sock: socket.socket, deadline_s: float) -> bytes:
    """Read until the server closes the connection or the answer is complete; b"" if it closed."""
    sock.settimeout(deadline_s)
    received = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received
            received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                return received
    except ConnectionResetError:
        return received
    finally:
        sock.close()


def assert_timed_out(answer: bytes) -> None:
    """Assert the server answered 408 with the JSON ErrorBody, or just closed the connection."""
    if not answer:
        return
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), answer[:300]
    error = json.loads(body)
    assert error["success"] is False
    assert "no data" in error["message"]


def wait_until(condition: Callable[[], bool], timeout_s: float) -> bool:
    """Poll `condition` until it holds or `timeout_s` passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_stalled_upload_gets_408_and_its_temp_file_is_deleted(
    server: RunningServer, model_id: str
) -> None:
    assert temp_files(server) == []
    sock = open_stalled_upload(server, model_id)
    started = time.monotonic()
    with sock:  # closed by read_answer, or here when an assertion fails first
        assert wait_until(lambda: bool(temp_files(server)), IDLE_TIMEOUT_S - 0.5), (
            "the upload never reached storage"
        )
        answer = read_answer(sock, ANSWER_WITHIN_S)
    elapsed = time.monotonic() - started
    assert IDLE_TIMEOUT_S - 0.5 <= elapsed < ANSWER_WITHIN_S, elapsed
    assert_timed_out(answer)
    assert wait_until(lambda: temp_files(server) == [], 2), temp_files(server)
    record = httpx.get(
        f"{server.url}/v1/models/{model_id}", headers={"x-api-key": server.keys["alice"]}
    ).json()["data"]
    assert record["has_last_weights"] is False


def test_real_requests_succeed_while_twenty_uploads_are_stalled(
    server: RunningServer, model_id: str, tmp_path: Path
) -> None:
    sockets = [open_stalled_upload(server, model_id) for _ in range(20)]
    opened = time.monotonic()
    try:
        headers = {"x-api-key": server.keys["bob"]}
        with httpx.Client(base_url=server.url, headers=headers, timeout=5) as client:
            created = client.post("/v1/models", json={"meta": {"name": "meanwhile"}})
            assert created.status_code == 200, created.text
            bobs_model = created.json()["data"]["id"]
            upload = client.post(
                f"/v1/models/{bobs_model}/upload",
                data={"epoch": "0", "type": "final", "map": "0.5"},
                files={"best.pt": ("best.pt", b"weights" * 1000)},
            )
            assert upload.status_code == 200, upload.text
            assert client.get(f"/v1/models/{bobs_model}").json()["data"]["status"] == "trained"
        # all of it happened while the stalled uploads still held their connections
        assert time.monotonic() - opened < IDLE_TIMEOUT_S
    finally:
        answers = [read_answer(sock, ANSWER_WITHIN_S) for sock in sockets]
    for answer in answers:
        assert_timed_out(answer)
    assert wait_until(lambda: temp_files(server) == [], 2), temp_files(server)
    assert "Traceback" not in server.log()
