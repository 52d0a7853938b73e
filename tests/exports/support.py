"""Real workers for a real server: start them, build tiny models, wait for exports.

The server runs from the test venv (no torch); each worker is `python -m trainhub.cli worker`
from the export venv (scripts/venvs.sh), on the server's data directory, so both share the
database, the storage and the SQLite queue (or a Redis queue when the test says so).
"""

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.servers import RunningServer, create_user, free_port, spawn_server

ROOT = Path(__file__).resolve().parents[2]
EXPORT_VENV = Path(os.environ.get("EXPORT_VENV") or ROOT / ".venv-export")
EXPORT_PYTHON = EXPORT_VENV / "bin" / "python"
MODELS_SCRIPT = Path(__file__).with_name("models.py")
RESULT_PREFIX = "RESULT "
EXPORT_TIMEOUT_S = 240.0  # one tiny export takes 5-20 s on a busy 2-core machine
# a short lease, so a killed worker's job is taken back within seconds
WORKER_ENV = {"TRAINHUB_JOB_LEASE_S": "4", "TRAINHUB_WORKER_POLL_S": "0.05"}


def require_export_venv() -> Path:
    """Return the export venv's python; fail with the command that builds it."""
    if not EXPORT_PYTHON.exists():
        raise RuntimeError(f"no export venv at {EXPORT_VENV}; build it with scripts/venvs.sh")
    return EXPORT_PYTHON


def export_env(scratch: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process in the export venv: offline, trainhub from this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TRAINHUB_", "ULTRALYTICS_"))}
    scratch.mkdir(parents=True, exist_ok=True)
    env.update(
        PYTHONPATH=str(ROOT / "src"),
        YOLO_CONFIG_DIR=str(scratch / "yolo-config"),
        YOLO_OFFLINE="true",
        YOLO_AUTOINSTALL="false",
        MPLCONFIGDIR=str(scratch / "mpl"),
        CUDA_VISIBLE_DEVICES="",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra or {})
    return env


def run_models(command: str, scratch: Path, **params: Any) -> dict[str, Any]:
    """Run a command of tests/exports/models.py in the export venv; return its RESULT."""
    proc = subprocess.run(
        [str(require_export_venv()), str(MODELS_SCRIPT), command, json.dumps(params)],
        capture_output=True,
        text=True,
        timeout=300,
        env=export_env(scratch),
        cwd=scratch,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"models.py {command} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return dict(json.loads(lines[-1][len(RESULT_PREFIX) :]))


@dataclass
class Worker:
    """A `trainhub worker` process in the export venv."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_worker(data_dir: Path, env: dict[str, str] | None = None) -> Worker:
    """Start a worker on `data_dir` (the SQLite queue there, unless env names Redis)."""
    count = len(list(data_dir.parent.glob("worker-*.log")))
    log_path = data_dir.parent / f"worker-{count}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [
                str(require_export_venv()),
                "-m",
                "trainhub.cli",
                "worker",
                "--data-dir",
                str(data_dir),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=export_env(data_dir.parent / "worker-scratch", {**WORKER_ENV, **(env or {})}),
        )
    return Worker(proc, log_path)


@dataclass
class Hub:
    """A server, its users' keys and the workers started for it."""

    server: RunningServer
    workers: list[Worker] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # given to every worker

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, user: str = "alice") -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"x-api-key": self.server.keys[user]}, timeout=60
        )

    def add_worker(self, env: dict[str, str] | None = None) -> Worker:
        worker = start_worker(self.server.data_dir, {**self.env, **(env or {})})
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        parts = [f"--- server ---\n{self.server.log()[-8000:]}"]
        parts += [f"--- worker {i} ---\n{w.log()[-8000:]}" for i, w in enumerate(self.workers)]
        return "\n".join(parts)

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            health = httpx.get(f"{self.url}/healthz", timeout=10).json()
            if health["data"]["queue"]["workers"] >= count:
                return
            if any(w.proc.poll() is not None for w in self.workers):
                break
            time.sleep(0.2)
        raise AssertionError(f"{count} worker(s) did not come up\n{self.logs()}")


@contextmanager
def running_hub(base: Path, env: dict[str, str] | None = None, workers: int = 1) -> Iterator[Hub]:
    """A server (test venv) with users alice and bob, and `workers` workers (export venv)."""
    data_dir = base / "hub-data"
    data_dir.mkdir(parents=True)
    keys = {
        "alice": create_user(data_dir, "alice", admin=True),
        "bob": create_user(data_dir, "bob"),
    }
    server_env = {**WORKER_ENV, **(env or {})}
    server = spawn_server(data_dir, free_port(), server_env)
    server.keys = keys
    hub = Hub(server, env=dict(env or {}))
    try:
        for _ in range(workers):
            hub.add_worker()
        if workers:
            hub.wait_for_workers(workers)
        yield hub
    finally:
        for worker in hub.workers:
            worker.stop()
        hub.server.kill(signal.SIGTERM)  # the one running now (a test may have restarted it)


def create_trained_model(client: httpx.Client, weights: Path, **doc: Any) -> str:
    """Create a model and upload `weights` as its final weights; return its id."""
    answer = client.post("/v1/models", json={"meta": {"name": weights.stem}, **doc})
    assert answer.status_code == 200, answer.text
    model_id = str(answer.json()["data"]["id"])
    with weights.open("rb") as fh:
        stored = client.post(
            f"/v1/models/{model_id}/upload",
            data={"epoch": "0", "type": "final", "map": "0.5"},
            files={"best.pt": ("best.pt", fh)},
        )
    assert stored.status_code == 200, stored.text
    return model_id


def wait_for_export(
    hub: Hub, client: httpx.Client, model_id: str, fmt: str, timeout: float = EXPORT_TIMEOUT_S
) -> dict[str, Any]:
    """Poll `/get-export` until the export is done or failed; return the whole answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.post("/get-export", json={"modelId": model_id, "format": fmt})
        assert answer.status_code == 200, f"{answer.text}\n{hub.logs()}"
        body = answer.json()
        if body["data"]["status"] in ("done", "failed"):
            return dict(body)
        time.sleep(0.3)
    raise AssertionError(f"the {fmt} export of {model_id} did not end in {timeout} s\n{hub.logs()}")


def export_status(client: httpx.Client, model_id: str, fmt: str) -> dict[str, Any]:
    answer = client.post("/get-export", json={"modelId": model_id, "format": fmt})
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])
