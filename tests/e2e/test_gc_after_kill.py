"""A server killed (SIGKILL) in the middle of every kind of upload, then `trainhub gc`: 0 orphans.

One real `trainhub server` per storage (the local folder, a bucket on SeaweedFS) receives at
once: a plain multipart weights upload, a dataset archive and a tus PATCH, each cut off half-way
(the tus upload's bytes sit in the storage folder's `partial/`, or on SeaweedFS in a multipart
upload of its own, one 5 MiB part of which is recorded before the kill);
a weights upload whose blob is published while the test holds the database's write lock, so its
row is never committed; and on SeaweedFS a large weights upload whose parts the fault proxy
holds, so its multipart upload is never completed. Then the server is killed, `gc --dry-run`
lists every kind and removes nothing, `gc` removes them all, and storage holds exactly the blobs
that rows name. A restarted server still serves the weights committed before the kill.
"""

import base64
import os
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.factories import create_model
from tests.multipart import Part, multipart_body
from tests.s3 import Bucket
from tests.seaweed import S3FaultProxy, environment_for, start_fault_proxy
from tests.servers import TRAINHUB, RunningServer, free_port, spawn_server, start_server
from trainhub.server.db import garbage
from trainhub.server.db.engine import Database
from trainhub.server.storage import Storage, from_url

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024
FINAL = {"type": "final", "epoch": "1", "map": "0.5"}
EPOCH = {"type": "epoch", "epoch": "2", "isBest": "False"}


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextmanager
def half_sent(
    server: RunningServer, method: str, path: str, headers: dict[str, str], body: bytes
) -> Iterator[None]:
    """Send a request whose body is declared whole but cut off half-way; keep it open."""
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port))
    fields = {"Host": "127.0.0.1", **headers, "Content-Length": str(len(body))}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock.sendall(f"{head}\r\n".encode() + body[: len(body) // 2])
    try:
        yield
    finally:
        sock.close()


def weights_request(key: str, size: int) -> tuple[dict[str, str], bytes]:
    body, headers = multipart_body(
        [
            Part("epoch", b"1"),
            Part("type", b"epoch"),
            Part("isBest", b"True"),
            Part("last.pt", bytes(size), "last.pt"),
        ]
    )
    return {**headers, "x-api-key": key}, body


def dataset_request(key: str, size: int) -> tuple[dict[str, str], bytes]:
    body, headers = multipart_body([Part("shapes.zip", b"PK" + bytes(size), "shapes.zip")])
    return {**headers, "x-api-key": key}, body


def in_background(action: Callable[[], object]) -> threading.Thread:
    thread = threading.Thread(target=lambda: _swallow(action), daemon=True)
    thread.start()
    return thread


def _swallow(action: Callable[[], object]) -> None:
    with suppress(httpx.HTTPError):  # the server is killed under it
        action()


@contextmanager
def write_lock(database: Path) -> Iterator[None]:
    """Hold SQLite's write lock: the server's next write transaction waits for it."""
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.rollback()
        conn.close()


def orphans(data_dir: Path, storage: Storage) -> list[str]:
    """Return everything that would be garbage whatever its age (expected: nothing)."""
    db = Database(f"sqlite:///{data_dir / 'trainhub.db'}")
    try:
        with db.read() as session:
            referenced = garbage.referenced_keys(session)
            uploads = garbage.upload_ids(session)
    finally:
        db.dispose()
    return [
        *(f"blob {b.key}" for b in storage.iter_blobs() if b.key not in referenced),
        *(f"leftover {item.what}" for item in storage.leftovers()),
        *(f"upload stored {item.what}" for item in storage.partials()),
        *(f"upload row {upload_id}" for upload_id in uploads),
    ]


def trainhub_gc(
    data_dir: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TRAINHUB, "gc", "--data-dir", str(data_dir), "--grace-s", "0", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("storage_kind", ["local", "seaweedfs"])
def test_gc_after_a_kill_during_every_kind_of_upload_leaves_no_orphan(
    tmp_path: Path, storage_kind: str, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    with fault_proxy_if(storage_kind, request) as (proxy, bucket):
        if proxy is not None and bucket is not None:
            env.update(environment_for(bucket.endpoint_url))
            env["TRAINHUB_STORAGE_URL"] = f"s3://{bucket.name}/hub?endpoint_url={proxy.url}"
        data_dir = tmp_path / "hub-data"  # start_server's
        storage_url = env.get("TRAINHUB_STORAGE_URL", f"file://{data_dir / 'blobs'}")
        storage = from_url(storage_url, data_dir / "spool", sweep=False)
        with start_server(tmp_path, extra_env=env) as server:
            model_id = kill_mid_uploads(server, proxy, storage)
        found = orphans(data_dir, storage)
        assert {item.split()[0] for item in found} == {"blob", "leftover", "upload"}, found

        dry = trainhub_gc(data_dir, env, "--upload-expiry-s", "0", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would remove orphaned blob: blob models/" in dry.stdout
        assert "would remove expired upload: resumable upload" in dry.stdout
        assert "would remove leftover: temp file" in dry.stdout
        if proxy is not None:
            assert "would remove leftover: unfinished multipart upload of s3://" in dry.stdout
            assert [item.what.split()[0] for item in storage.partials()] == ["multipart"]
        assert orphans(data_dir, storage) == found

        done = trainhub_gc(data_dir, env, "--upload-expiry-s", "0")
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines()[-1].startswith("removed ")
        assert orphans(data_dir, storage) == []
        assert_still_served(data_dir, env, server.keys["alice"], model_id)


def assert_still_served(data_dir: Path, env: dict[str, str], key: str, model_id: str) -> None:
    """Start the server again: the weights committed before the kill still download."""
    restarted = spawn_server(data_dir, free_port(), env)
    try:
        record = httpx.get(
            f"{restarted.url}/v1/models/{model_id}", headers={"x-api-key": key}
        ).json()["data"]
        download = httpx.get(record["weights"])
        assert download.status_code == 200 and download.content == bytes(5000)
    finally:
        restarted.kill()


@contextmanager
def fault_proxy_if(
    storage_kind: str, request: pytest.FixtureRequest
) -> Iterator[tuple[S3FaultProxy | None, Bucket | None]]:
    if storage_kind == "local":
        yield None, None
        return
    bucket: Bucket = request.getfixturevalue("s3_bucket")
    with start_fault_proxy(bucket.endpoint_url) as proxy:
        yield proxy, bucket


def kill_mid_uploads(server: RunningServer, proxy: S3FaultProxy | None, storage: Storage) -> str:
    """Leave every kind of interrupted upload behind, then SIGKILL the server; return the model."""
    key = server.keys["alice"]
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}, timeout=60) as hub:
        return leave_uploads_behind(server, proxy, storage, hub)


def leave_uploads_behind(
    server: RunningServer, proxy: S3FaultProxy | None, storage: Storage, hub: httpx.Client
) -> str:
    key = server.keys["alice"]
    model_id = create_model(hub)  # type: ignore[arg-type]
    kept = {"best.pt": ("best.pt", bytes(5000))}
    answer = hub.post(f"/v1/models/{model_id}/upload", data=FINAL, files=kept)
    assert answer.status_code == 200, answer.text
    dataset_id = hub.post("/v1/datasets", json={"meta": {"name": "d"}}).json()["data"]["id"]
    metadata = (
        f"modelId {base64.b64encode(model_id.encode()).decode()},type ZmluYWw=,epoch MQ==,map MC41"
    )
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": str(12 * MIB), "Upload-Metadata": metadata}
    location = urlsplit(hub.post("/v1/uploads", headers=tus).headers["location"]).path
    patch = {
        "x-api-key": key,
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
    }
    with (
        half_sent(server, "POST", f"/v1/models/{model_id}/upload", *weights_request(key, 4 * MIB)),
        half_sent(server, "POST", f"/v1/datasets/{dataset_id}/upload", *dataset_request(key, MIB)),
        half_sent(server, "PATCH", location, patch, bytes(12 * MIB)),
    ):
        wait_for(lambda: len(list(server.data_dir.rglob(".upload-*"))) >= 2, "two temp files")
        if proxy is not None:  # a part of the tus upload is in the bucket, and recorded
            wait_for(lambda: tus_offset(server.data_dir) == 5 * MIB, "the first part of tus")
        if proxy is not None:  # a multipart upload to the bucket that never completes
            hold = proxy.hold(lambda r: r.is_upload_part())
            big = {"last.pt": ("last.pt", bytes(17 * MIB))}
            post = f"/v1/models/{model_id}/upload"
            in_background(lambda: hub.post(post, data=EPOCH, files=big))
            wait_for(lambda: hold.hits >= 1, "a part of the multipart upload")
        with write_lock(server.data_dir / "trainhub.db"):  # published, never committed
            orphan = {"best.pt": ("best.pt", b"orphan" * 100)}
            post = f"/v1/models/{model_id}/upload"
            in_background(lambda: hub.post(post, data=FINAL, files=orphan))
            wait_for(lambda: count_best(storage) == 2, "the orphan blob to be published")
            server.kill()
    return model_id


def tus_offset(data_dir: Path) -> int:
    """Return the offset the database records for the one resumable upload."""
    with sqlite3.connect(data_dir / "trainhub.db") as conn:
        return int(conn.execute('SELECT "offset" FROM resumable_uploads').fetchone()[0])


def count_best(storage: Storage) -> int:
    """Return how many final-weights blobs are published."""
    return sum(1 for blob in storage.iter_blobs() if "/best-" in blob.key)
