"""A realistic session against a real `trainhub server`: what the e2e security tests look at.

Uploads weights (plain and tus), a dataset and a cover, follows every signed download link,
sends keys in query strings as careless clients do, and leaves one tus upload half done and one
plain upload stalled mid-body, so the server holds a partial upload and a temp file.
"""

import base64
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.factories import PNG_1PX, dataset_zip
from tests.servers import RunningServer

TUS = {"Tus-Resumable": "1.0.0"}


@dataclass
class Flow:
    """What the flow made: alice's model, the signed download URLs, the upload left open."""

    model_id: str = ""
    download_urls: list[str] = field(default_factory=list)
    partial_upload_url: str = ""

    def tokens(self) -> list[str]:
        """Return the signed tokens of every download URL (the segment after /files/)."""
        return [urlsplit(url).path.split("/")[2] for url in self.download_urls]


def tus_metadata(fields: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def run_flow(hub: RunningServer) -> Flow:
    """Drive the hub as alice and bob would; return the links and uploads it produced."""
    flow = Flow()
    key = hub.keys["alice"]
    with httpx.Client(base_url=hub.url, headers={"x-api-key": key}, timeout=30) as api:
        model_id = api.post("/v1/models", json={"meta": {"name": "flow"}}).json()["data"]["id"]
        flow.model_id = model_id
        weights = os.urandom(4096)
        for part, kind in (("last.pt", "epoch"), ("best.pt", "final")):
            sent = api.post(
                f"/v1/models/{model_id}/upload",
                data={"epoch": "1", "type": kind, "isBest": "True", "map": "0.5"},
                files={part: (part, weights)},
            )
            assert sent.status_code == 200, sent.text
        flow.partial_upload_url = _tus_uploads(api, model_id)
        dataset_id = api.post(
            "/v1/datasets", json={"meta": {"name": "shapes"}, "filename": "shapes.zip"}
        ).json()["data"]["id"]
        archive = dataset_zip()
        sent = api.post(
            f"/v1/datasets/{dataset_id}/upload", files={"shapes.zip": ("shapes.zip", archive)}
        )
        assert sent.status_code == 200, sent.text
        project_id = api.post("/v1/projects", json={"meta": {"name": "p"}}).json()["data"]["id"]
        sent = api.post(f"/v1/projects/{project_id}/upload", files={"file": ("c.png", PNG_1PX)})
        assert sent.status_code == 200, sent.text
        model = api.get(f"/v1/models/{model_id}").json()["data"]
        dataset = api.get(f"/v1/datasets/{dataset_id}").json()["data"]
        project = api.get(f"/v1/projects/{project_id}").json()["data"]
        flow.download_urls = [model["weights"], model["resume"], dataset["url"], project["cover"]]
        for url in flow.download_urls:
            assert httpx.get(url, timeout=30).status_code == 200, url
            assert httpx.head(url, timeout=30).status_code == 200, url
        _keys_in_query_strings(hub, model_id)
    return flow


def _tus_uploads(api: httpx.Client, model_id: str) -> str:
    """Finish one tus upload, leave a second one half done; return the second one's URL."""
    data = os.urandom(64 * 1024)
    fields = {"modelId": model_id, "type": "final", "epoch": "2", "map": "0.6"}
    fields["sha256"] = hashlib.sha256(data).hexdigest()
    urls = []
    for _ in range(2):
        created = api.post(
            "/v1/uploads",
            headers={
                **TUS,
                "Upload-Length": str(len(data)),
                "Upload-Metadata": tus_metadata(fields),
            },
        )
        assert created.status_code == 201, created.text
        urls.append(created.headers["location"])
    patch = {**TUS, "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    assert api.patch(urls[0], content=data, headers=patch).status_code == 204
    assert api.patch(urls[1], content=data[:1000], headers=patch).status_code == 204
    assert api.head(urls[1], headers=TUS).headers["upload-offset"] == "1000"
    return urls[1]


def _keys_in_query_strings(hub: RunningServer, model_id: str) -> None:
    """Send API keys and made-up secrets the careless way: in the URL."""
    for name in ("alice", "bob"):
        key = hub.keys[name]
        for path in (
            f"/v1/models?api_key={key}",
            f"/v1/models/{model_id}?api_key={key}&public=true",
            f"/models/{model_id}?api_key={key}",
            f"/v1/models?token={key}&x-api-key={key}",
            f"/nowhere?key={key}",
        ):
            httpx.get(hub.url + path, timeout=30)
    bad = httpx.get(f"{hub.url}/v1/models?api_key=ul{'0' * 40}", headers={"x-api-key": "x"})
    assert bad.status_code == 401


@contextmanager
def stalled_upload(hub: RunningServer, model_id: str) -> Iterator[None]:
    """Hold a plain weights upload open mid-body until the block ends (its temp file exists)."""
    parts = urlsplit(hub.url)
    boundary = "b0undary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="epoch"\r\n\r\n1\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="type"\r\n\r\nepoch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="last.pt"; filename="last.pt"\r\n'
        "\r\n"
    ).encode()
    total = len(head) + 4 * 1024 * 1024
    request = (
        f"POST /v1/models/{model_id}/upload HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"x-api-key: {hub.keys['alice']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {total}\r\n\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(request + head + os.urandom(1024 * 1024))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not temp_files(hub.data_dir):
            time.sleep(0.05)
        yield


def temp_files(data_dir: Path) -> list[Path]:
    """Return the upload temp files in the blob storage's tmp folder."""
    return sorted((data_dir / "blobs" / "tmp").glob(".upload-*"))
