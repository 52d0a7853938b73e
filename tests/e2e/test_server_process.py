"""`trainhub server` as a user starts it: first-start admin key, start-up facts, clean stop, S3."""

import hashlib
import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.s3 import SECRET_ACCESS_KEY, aws_env, create_bucket
from tests.servers import TRAINHUB, assert_healthy, free_port, spawn_server, start_server

pytestmark = pytest.mark.e2e


def test_first_start_creates_an_admin_and_prints_its_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = spawn_server(data_dir, free_port())
    try:
        log = server.log()
        found = re.search(r"\(next line\):\n(ul[0-9a-f]{40})$", log, re.MULTILINE)
        assert found, log
        key = found[1]
        answer = httpx.post(f"{server.url}/v1/auth", headers={"x-api-key": key}).json()
        assert answer["data"]["name"] == "admin" and answer["data"]["isAdmin"] is True
        assert f"ULTRALYTICS_API_KEY):  ul_{key[2:]}" in log
        for fact in (
            f"public URL {server.url}",
            "database: sqlite:///",
            "storage: local folder",
            f"export ULTRALYTICS_HUB_API={server.url}",
            f"export ULTRALYTICS_HUB_WEB={server.url}",
            f"export ULTRALYTICS_PLATFORM_URL={server.url}",
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


def test_a_user_created_from_another_folder_can_use_the_running_hub(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    server = spawn_server(data_dir, free_port())
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
        created = subprocess.run(
            [*TRAINHUB, "users", "create", "carol"],
            cwd=elsewhere,
            env={**env, "TRAINHUB_DATA_DIR": str(data_dir)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert created.returncode == 0, created.stderr
        assert created.stderr == f"database: sqlite:///{data_dir}/trainhub.db\n"
        key = created.stdout.strip().splitlines()[-1]
        answer = httpx.post(f"{server.url}/v1/auth", headers={"x-api-key": key}).json()
        assert answer["success"] is True and answer["data"]["name"] == "carol"
    finally:
        server.kill(signal.SIGTERM)
    assert list(elsewhere.iterdir()) == []


def test_health_answers_while_the_server_runs(tmp_path: Path) -> None:
    server = spawn_server(tmp_path / "data", free_port())
    try:
        assert_healthy(httpx.get(f"{server.url}/healthz"))
        assert httpx.get(f"{server.url}/openapi.json").json()["info"]["title"] == "trainhub"
    finally:
        server.kill(signal.SIGTERM)


def test_a_server_on_s3_storage_stores_weights_in_the_bucket_and_serves_them(
    tmp_path: Path, moto_endpoint: str
) -> None:
    bucket = create_bucket(moto_endpoint, "trainhub-e2e")
    url = "s3://trainhub-e2e/some/prefix"
    with start_server(tmp_path, "--storage-url", url, extra_env=aws_env(moto_endpoint)) as server:
        assert f"storage: {url} (endpoint {moto_endpoint})" in server.log()
        assert_healthy(httpx.get(f"{server.url}/healthz"))
        headers = {"x-api-key": server.keys["alice"]}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as alice:
            model_id = alice.post("/v1/models", json={"meta": {"name": "m"}}).json()["data"]["id"]
            data = os.urandom(3 * 1024 * 1024)
            sha256 = hashlib.sha256(data).hexdigest()
            answer = alice.post(
                f"/v1/models/{model_id}/upload",
                data={"epoch": "3", "type": "final", "map": "0.5", "sha256": sha256},
                files={"best.pt": ("best.pt", data)},
            )
            assert answer.status_code == 200, answer.text
            link = alice.get(f"/v1/models/{model_id}").json()["data"]["weights"]
        assert f"some/prefix/models/{model_id}/best-{sha256}" in bucket.object_keys()
        download = httpx.get(link)  # a signed URL: no key, as ultralytics fetches it
        assert (
            download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == sha256
        )
        ranged = httpx.get(link, headers={"range": "bytes=1048576-"})
        assert ranged.status_code == 206 and ranged.content == data[1024 * 1024 :]
        assert list((server.data_dir / "spool" / "tmp").iterdir()) == []
        assert SECRET_ACCESS_KEY not in server.log()
