"""The worker `trainhub server` starts beside itself, so that exports work out of the box.

It is a `trainhub worker` subprocess of the same Python (torch never enters the server process),
started when `embedded_worker` is "on", or "auto" and the export extra is installed. It gets the
server's settings through TRAINHUB_* variables, runs in a session of its own (a Ctrl-C in the
terminal reaches the server only), is started again if it dies, and stops with the server: it
also stops by itself when its stdin, a pipe from the server, closes.
"""

import logging
import os
import subprocess
import sys
import threading
from typing import Any

logger = logging.getLogger(__name__)
# the settings a worker needs from its server; the rest keep their defaults or the environment
PASSED_SETTINGS = (
    "data_dir",
    "database_url",
    "storage_url",
    "redis_url",
    "queue_name",
    "worker_threads",
    "worker_poll_s",
    "worker_model_cache_size",
    "job_lease_s",
    "job_max_attempts",
    "export_timeout_s",
    "max_predict_pixels",
)
FIRST_RESTART_DELAY_S = 1.0
MAX_RESTART_DELAY_S = 60.0
STOP_TIMEOUT_S = 15.0


def worker_environment(settings: Any) -> dict[str, str]:
    """Return the environment of the embedded worker: ours plus the server's settings."""
    env = dict(os.environ)
    for name in PASSED_SETTINGS:
        value = getattr(settings, name)
        if value is not None:
            env[f"TRAINHUB_{name.upper()}"] = str(value)
    return env


class EmbeddedWorker:
    """Starts, restarts and stops one `trainhub worker` subprocess."""

    def __init__(self, settings: Any, log_level: str) -> None:
        self.command = [
            sys.executable,
            "-m",
            "trainhub.cli",
            "--log-level",
            log_level,
            "worker",
            "--embedded",
        ]
        self.env = worker_environment(settings)
        self.proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="embedded-worker", daemon=True)

    def start(self) -> None:
        """Start the worker and a thread that starts it again whenever it dies."""
        self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        self.proc = subprocess.Popen(
            self.command, stdin=subprocess.PIPE, env=self.env, start_new_session=True
        )
        logger.info("started the embedded worker (pid %d)", self.proc.pid)

    def _watch(self) -> None:
        delay = FIRST_RESTART_DELAY_S
        while not self._stopping.is_set():
            assert self.proc is not None
            code = self.proc.wait()
            if self._stopping.is_set():
                return
            logger.warning(
                "the embedded worker ended with exit code %s; starting it again in %.0f s",
                code,
                delay,
            )
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, MAX_RESTART_DELAY_S)
            self._spawn()

    def stop(self) -> None:
        """Stop the worker (SIGTERM, then SIGKILL after a grace period)."""
        self._stopping.set()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdin:
            proc.stdin.close()
