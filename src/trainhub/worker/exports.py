"""Running an export job: claim it, export in a child process, publish the file, record it.

The job is claimed in the database first (a duplicate message or a job cleared meanwhile is
skipped). While the child runs, the worker reports on the job every few seconds; if the job is
taken away (cleared, or presumed dead and requeued) the child is stopped. The output is streamed
to storage with its sha256 and published under a new key; only then is the job marked done, so
a `done` job always has a complete file (docs/decisions/0017-job-queue.md).
"""

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from trainhub.protocol.exports import find_format
from trainhub.server.db import exports as queries
from trainhub.server.db.engine import Database
from trainhub.server.settings import Settings
from trainhub.server.storage import Storage
from trainhub.worker.models import fetch

logger = logging.getLogger(__name__)

LOG_TAIL_LINES = 15
MAX_ERROR_CHARS = 4000
CHUNK_BYTES = 1024 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# the pip package behind a module an exporter imports, where the two names differ
PACKAGES = {
    "paddle": "paddlepaddle",
    "rknn": "rknn-toolkit2",
    "tflite_support": "tflite-support",
    "tflite_runtime": "tflite-runtime",
    "model_compression_toolkit": "model-compression-toolkit",
    "imx500_converter": "imx500-converter",
    "sony_custom_layers": "sony-custom-layers",
}


class ExportFailedError(Exception):
    """The export did not produce a file; the message says why and what to do."""


def child_environment(config_dir: Path) -> dict[str, str]:
    """Return the exporter's environment: offline, no auto-installs, and no trainhub secrets.

    The child unpickles the user's checkpoint, which runs code it carries; it gets no database
    URL, Redis URL or secret key (docs/security.md §2.9).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    env.update(
        YOLO_CONFIG_DIR=str(config_dir),
        YOLO_OFFLINE="true",
        YOLO_AUTOINSTALL="false",
        YOLO_VERBOSE="true",
        PYTHONUNBUFFERED="1",
    )
    return env


def log_tail(path: Path) -> str:
    """Return the last lines the exporter printed, without colour codes."""
    if not path.exists():
        return ""
    lines = _ANSI.sub("", path.read_text(errors="replace")).strip().splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


def describe_failure(format_name: str, outcome: dict[str, object], tail: str) -> str:
    """Return why an export failed, and what to do about it."""
    export_format = find_format(format_name)
    title = export_format.title if export_format else format_name
    missing = outcome.get("missing")
    if isinstance(missing, str) and missing:
        top = missing.split(".")[0]
        package = PACKAGES.get(top, top)
        return (
            f"exporting to {title} needs the Python package {package!r}, which is not installed "
            f"where the worker runs; install it there (pip install {package}), restart the "
            "worker and request the export again"
        )
    message = f"the exporter failed: {outcome.get('error') or 'no reason given'}"
    if tail:
        message += f"\nlast lines of its output:\n{tail}"
    return message[:MAX_ERROR_CHARS]


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip `folder` (the folder itself as the top entry) into `target`."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder.parent).as_posix())
    return target


class ExportRunner:
    """Runs export jobs for one worker process."""

    def __init__(
        self, db: Database, storage: Storage, settings: Settings, worker_id: str, scratch: Path
    ) -> None:
        self.db = db
        self.storage = storage
        self.settings = settings
        self.worker_id = worker_id
        self.scratch = scratch
        self.report_every_s = max(0.5, min(5.0, settings.job_lease_s / 4))

    def run(self, export_id: str) -> None:
        """Run the export job `export_id` if it is still queued."""
        with self.db.write() as session:
            job = queries.claim(session, export_id, self.worker_id)
        if job is None:
            logger.info("export %s is not queued any more; skipped", export_id)
            return
        logger.info(
            "export %s: model %s to %s, attempt %d", job.id, job.model_id, job.format, job.attempt
        )
        started = time.monotonic()
        workdir = self.scratch / f"{job.id}-{job.attempt}"
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        try:
            key, sha256, size = self._export(job, workdir)
        except Exception as exc:
            error = (
                str(exc)
                if isinstance(exc, ExportFailedError)
                else (
                    f"the worker failed while exporting ({type(exc).__name__}: {exc}); request the "
                    "export again, and check the worker's log if it fails again"
                )
            )
            with self.db.write() as session:
                queries.fail(session, job.id, self.worker_id, error)
            logger.warning(
                "export %s failed after %.1f s: %s", job.id, time.monotonic() - started, error
            )
            return
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        with self.db.write() as session:
            recorded = queries.finish(
                session, job.id, self.worker_id, key=key, sha256=sha256, size=size
            )
        if not recorded:  # cleared, or taken back, while it ran: nobody refers to the file
            self.storage.delete(key)
            logger.info("export %s was cleared while it ran; its file is dropped", job.id)
            return
        logger.info(
            "export %s done in %.1f s: %s, %d bytes",
            job.id,
            time.monotonic() - started,
            job.format,
            size,
        )

    def _export(self, job: queries.ClaimedExport, workdir: Path) -> tuple[str, str, int]:
        weights = fetch(self.storage, job.weights_key, job.weights_sha256, workdir / "best.pt")
        output = self._run_child(job, weights, workdir)
        if output.is_dir():
            output = zip_folder(output, workdir / f"{output.name}.zip")
        return self._publish(job, output)

    def _run_child(self, job: queries.ClaimedExport, weights: Path, workdir: Path) -> Path:
        result = workdir / "result.json"
        log = workdir / "export.log"
        spec = {"weights": str(weights), "format": job.format, "result": str(result)}
        with log.open("wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-m", "trainhub.worker.exporter", json.dumps(spec)],
                stdin=subprocess.PIPE,  # never written: its end tells the child the worker died
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                env=child_environment(workdir / "config"),
            )
            try:
                self._watch(job, child)
            finally:
                if child.poll() is None:
                    child.kill()
                child.wait()
                if child.stdin:
                    child.stdin.close()
        try:
            outcome = json.loads(result.read_text())
        except (OSError, ValueError):
            outcome = {
                "ok": False,
                "error": f"the exporter ended with exit code {child.returncode}",
            }
        if not outcome.get("ok"):
            raise ExportFailedError(describe_failure(job.format, outcome, log_tail(log)))
        output = Path(str(outcome["path"]))
        if not output.is_absolute():
            output = workdir / output
        if not output.exists():
            raise ExportFailedError(f"the exporter reported {output.name}, which does not exist")
        return output

    def _watch(self, job: queries.ClaimedExport, child: "subprocess.Popen[bytes]") -> None:
        """Wait for the child; report on the job meanwhile; stop it on timeout or if taken away."""
        deadline = time.monotonic() + self.settings.export_timeout_s
        while True:
            try:
                child.wait(timeout=self.report_every_s)
                return
            except subprocess.TimeoutExpired:
                pass
            with self.db.write() as session:
                still_mine = queries.report(session, job.id, self.worker_id)
            if not still_mine:
                raise ExportFailedError("the export was cleared or taken back while it ran")
            if time.monotonic() > deadline:
                raise ExportFailedError(
                    f"the export took longer than {self.settings.export_timeout_s:g} s "
                    "(export_timeout_s) and was stopped"
                )

    def _publish(self, job: queries.ClaimedExport, output: Path) -> tuple[str, str, int]:
        writer = self.storage.create_writer()
        try:
            with output.open("rb") as source:
                while chunk := source.read(CHUNK_BYTES):
                    writer.write(chunk)
            sha256 = writer.hexdigest()
            key = f"exports/{job.model_id}/{job.id}-{sha256}"
            writer.publish(key)
        except BaseException:
            writer.abort()
            raise
        return key, sha256, writer.size
