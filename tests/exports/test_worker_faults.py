"""Workers that die, stop or restart never leave a job "in progress".

See docs/decisions/0017-job-queue.md.

Each test runs its own server and workers with a 4-second job lease, so a killed worker's job is
taken back within seconds.
"""

import contextlib
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.exports.support import (
    EXPORT_PYTHON,
    Hub,
    create_trained_model,
    export_env,
    export_status,
    running_hub,
    wait_for_export,
)
from tests.servers import create_user, free_port

pytestmark = [pytest.mark.e2e]


def exporters_of(pid: int) -> list[psutil.Process]:
    """The exporter child processes of a worker."""
    children = psutil.Process(pid).children(recursive=True)
    return [c for c in children if "trainhub.worker.exporter" in " ".join(c.cmdline())]


def start_export_and_wait_until_running(hub: Hub, client: httpx.Client, model_id: str) -> int:
    """Request an ONNX export; return the pid of its exporter once it runs."""
    answer = client.post(f"/v1/models/{model_id}/export", json={"format": "onnx"})
    assert answer.status_code == 200, answer.text
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if export_status(client, model_id, "onnx")["status"] == "running":
            found = exporters_of(hub.workers[-1].proc.pid)
            if found:
                return found[0].pid
        time.sleep(0.05)
    raise AssertionError(f"the export did not start\n{hub.logs()}")


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def test_a_worker_killed_mid_export_leaves_no_stuck_job(tmp_path: Path, detect_weights) -> None:
    with running_hub(tmp_path) as hub, hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        exporter = start_export_and_wait_until_running(hub, alice, model_id)
        hub.workers[0].stop(signal.SIGKILL)
        assert gone(exporter), "the exporter outlived its killed worker"
        assert export_status(alice, model_id, "onnx")["status"] == "running"  # nobody knows yet
        hub.add_worker()
        body = wait_for_export(hub, alice, model_id, "onnx")
    assert body["message"] == "Export ready!", hub.logs()
    assert body["data"]["attempts"] == 2
    assert "went silent; queued again" in hub.workers[1].log()


def test_a_job_whose_workers_keep_dying_fails_with_the_reason(tmp_path, detect_weights) -> None:
    env = {"TRAINHUB_JOB_MAX_ATTEMPTS": "1"}
    with running_hub(tmp_path, env=env) as hub, hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        start_export_and_wait_until_running(hub, alice, model_id)
        hub.workers[0].stop(signal.SIGKILL)
        hub.add_worker()
        body = wait_for_export(hub, alice, model_id, "onnx")
    assert body["success"] is False and body["data"]["status"] == "failed"
    assert "stopped answering 1 time(s)" in body["message"]
    assert "request the export again" in body["message"]


def test_a_worker_stopped_cleanly_puts_its_export_back(tmp_path, detect_weights) -> None:
    with running_hub(tmp_path) as hub, hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        exporter = start_export_and_wait_until_running(hub, alice, model_id)
        hub.workers[0].stop(signal.SIGTERM)
        assert gone(exporter)
        record = export_status(alice, model_id, "onnx")
        assert (record["status"], record["attempts"]) == ("queued", 0), hub.logs()
        assert "put back in the queue" in hub.workers[0].log()
        hub.add_worker()
        body = wait_for_export(hub, alice, model_id, "onnx")
    assert body["message"] == "Export ready!" and body["data"]["attempts"] == 1


def test_jobs_queued_while_the_server_restarts_are_done(tmp_path, detect_weights) -> None:
    with running_hub(tmp_path, workers=0) as hub, hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        assert (
            alice.post(f"/v1/models/{model_id}/export", json={"format": "onnx"}).status_code == 200
        )
        hub.server.kill(signal.SIGKILL)
        from tests.servers import spawn_server

        restarted = spawn_server(hub.server.data_dir, free_port(), {"TRAINHUB_JOB_LEASE_S": "4"})
        restarted.keys = hub.server.keys
        hub.server = restarted
        hub.add_worker()
        with hub.client() as again:
            body = wait_for_export(hub, again, model_id, "onnx")
    assert body["message"] == "Export ready!", hub.logs()


def test_the_server_starts_a_worker_of_its_own_when_the_export_extra_is_installed(
    tmp_path: Path, detect_weights
) -> None:
    import subprocess

    data_dir = tmp_path / "hub-data"
    key = create_user(data_dir, "alice", admin=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    env = export_env(tmp_path / "scratch", {"TRAINHUB_JOB_LEASE_S": "4"})
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                str(EXPORT_PYTHON),
                "-m",
                "trainhub.cli",
                "server",
                "--port",
                str(port),
                "--data-dir",
                str(data_dir),
                "--public-url",
                url,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 120
        workers = 0
        while time.monotonic() < deadline and not workers:
            with contextlib.suppress(httpx.TransportError, KeyError, ValueError):
                workers = httpx.get(f"{url}/healthz", timeout=5).json()["data"]["queue"]["workers"]
            time.sleep(0.3)
        assert workers == 1, log.read_text()
        embedded = [c for c in psutil.Process(server.pid).children() if "worker" in c.cmdline()]
        assert len(embedded) == 1
        with httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=60) as alice:
            model_id = create_trained_model(alice, detect_weights)
            alice.post(f"/v1/models/{model_id}/export", json={"format": "onnx"})
            hub = Hub(server=None)  # type: ignore[arg-type]  # only for wait_for_export's logs
            hub.logs = lambda: log.read_text()  # type: ignore[method-assign]
            body = wait_for_export(hub, alice, model_id, "onnx")
        assert body["message"] == "Export ready!", log.read_text()
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    assert gone(embedded[0].pid), "the embedded worker outlived its server"
