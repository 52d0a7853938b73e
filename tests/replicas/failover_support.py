"""Replicas for the failover tests: `trainhub server` processes started at the same moment on
one PostgreSQL database and one storage (a SeaweedFS bucket or a shared folder), a raw tus
client, and a request cut off mid-body that stays open while its server is killed.
"""

import base64
import hashlib
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import httpx

from tests.servers import RunningServer

TUS = {"Tus-Resumable": "1.0.0"}


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def tus_create(hub: httpx.Client, model_id: str, data: bytes) -> str:
    """Start a resumable upload of `data` as the model's final weights; return its path."""
    fields = metadata(
        modelId=model_id,
        type="final",
        epoch="3",
        map="0.5",
        sha256=hashlib.sha256(data).hexdigest(),
    )
    headers = {**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": fields}
    answer = hub.post("/v1/uploads", headers=headers)
    assert answer.status_code == 201, answer.text
    return urlsplit(answer.headers["location"]).path


def tus_patch(hub: httpx.Client, location: str, offset: int, chunk: bytes) -> httpx.Response:
    headers = {
        **TUS,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    return hub.patch(location, content=chunk, headers=headers)


def tus_offset(hub: httpx.Client, location: str) -> int:
    answer = hub.head(location, headers=TUS)
    assert answer.status_code == 200, answer.text
    return int(answer.headers["upload-offset"])


@contextmanager
def patch_cut_off(
    server: RunningServer, key: str, location: str, offset: int, body: bytes, sent_bytes: int
) -> Iterator[None]:
    """PATCH `body` at `offset`, sending only its first `sent_bytes`; keep the request open."""
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port))
    fields = {
        "Host": "127.0.0.1",
        "x-api-key": key,
        **TUS,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
        "Content-Length": str(len(body)),
    }
    head = f"PATCH {location} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock.sendall(f"{head}\r\n".encode() + body[:sent_bytes])
    try:
        yield
    finally:
        sock.close()
