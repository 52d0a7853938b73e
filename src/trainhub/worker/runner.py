"""The worker process: register, consume the queue with huey's consumer, keep the jobs honest.

Beside huey's worker threads, one upkeep thread reports this worker alive and takes back the
export jobs of workers that went silent (services/exports.py). On a clean stop the worker puts
the exports it was running back in the queue, so a restart picks them up at once; a killed
worker's jobs are taken back by the next worker once the job lease has passed.
"""

import importlib.metadata
import logging
import os
import shutil
import socket
import threading
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import select

from trainhub.protocol.ids import create_id
from trainhub.server.changefeed import ChangeFeed
from trainhub.server.db import exports as export_queries
from trainhub.server.db import workers
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ExportRow, utcnow
from trainhub.server.jobs.queue import EXPORT, PREDICT, JobQueue, create_queue
from trainhub.server.services.exports import take_back_abandoned
from trainhub.server.settings import Settings
from trainhub.server.storage import from_url
from trainhub.worker.exports import ExportRunner
from trainhub.worker.models import ModelCache
from trainhub.worker.predictions import Predictor

logger = logging.getLogger(__name__)
PACKAGES = ("ultralytics", "torch", "onnxruntime", "onnx", "huey")
FIRST_POLL_S = 0.01


def versions() -> dict[str, str]:
    """Return the versions of the packages jobs run with (read from metadata, not imported)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


class Upkeep(threading.Thread):
    """Reports the worker alive and takes back abandoned exports, every few seconds."""

    def __init__(self, db: Database, queue: JobQueue, settings: Settings, worker_id: str) -> None:
        super().__init__(name="worker-upkeep", daemon=True)
        self.db, self.queue, self.settings, self.worker_id = db, queue, settings, worker_id
        self.interval_s = max(0.5, min(15.0, settings.job_lease_s / 4))
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval_s):
            self.tick()

    def tick(self) -> None:
        """Report once and take back what needs taking back; log failures, never raise."""
        try:
            with self.db.write() as session:
                workers.report(session, self.worker_id)
            requeued = take_back_abandoned(self.db, self.queue, self.settings)
            if requeued:
                logger.info("queued %d abandoned export(s) again", requeued)
        except Exception:
            logger.warning("worker upkeep failed; trying again shortly", exc_info=True)


def release_running(db: Database, queue: JobQueue, worker_id: str) -> None:
    """Put the exports this worker was running back in the queue (on a clean stop)."""
    with db.write() as session:
        rows = list(
            session.scalars(
                select(ExportRow).where(
                    ExportRow.worker_id == worker_id, ExportRow.status == export_queries.RUNNING
                )
            )
        )
        for row in rows:
            export_queries.release(row, utcnow())
            export_queries.note_change(session, row.id)
    for row in rows:
        queue.enqueue_export(row.id)
        logger.info("export %s put back in the queue", row.id)


def clear_old_folders(root: Path, db: Database, lease_s: float) -> None:
    """Delete the scratch folders of workers that are gone (killed ones leave theirs)."""
    if not root.is_dir():
        return
    with db.read() as session:
        alive = {w.id for w in workers.live_workers(session, lease_s)}
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in alive:
            shutil.rmtree(folder, ignore_errors=True)


def run_worker(settings: Settings, db: Database) -> None:
    """Run a worker until SIGINT (finish the running jobs) or SIGTERM (stop at once)."""
    Image.MAX_IMAGE_PIXELS = settings.max_predict_pixels  # Pillow's own bomb guard, same limit
    db.on_changes = ChangeFeed(db, settings.redis_url).publish  # what the dashboards show live
    storage = from_url(settings.resolved_storage_url(), settings.data_dir / "spool")
    queue = create_queue(settings)
    worker_id = create_id()
    root = settings.data_dir / "workers"
    clear_old_folders(root, db, settings.job_lease_s)
    home = root / worker_id
    info: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(), **versions()}
    with db.write() as session:
        workers.register(
            session, worker_id, f"{info['host']}:{info['pid']}", settings.worker_threads, info
        )
    exports = ExportRunner(db, storage, settings, worker_id, home / "exports")
    predictor = Predictor(ModelCache(storage, home / "models", settings.worker_model_cache_size))
    queue.handle(EXPORT, exports.run)
    queue.handle(PREDICT, predictor.run)
    upkeep = Upkeep(db, queue, settings, worker_id)
    upkeep.tick()  # take back what a killed worker left before taking new jobs
    upkeep.start()
    consumer = queue.huey.create_consumer(
        workers=settings.worker_threads,
        worker_type="thread",
        periodic=False,
        initial_delay=min(FIRST_POLL_S, settings.worker_poll_s),
        backoff=1.15,
        max_delay=settings.worker_poll_s,
    )
    logger.info(
        "worker %s (%s) started: %d thread(s), queue %s, storage %s, database %s; %s",
        worker_id,
        info["host"],
        settings.worker_threads,
        queue.describe(),
        storage.describe(),
        db.describe(),
        ", ".join(f"{k} {v}" for k, v in versions().items()),
    )
    try:
        consumer.run()
    finally:
        upkeep.stopped.set()
        release_running(db, queue, worker_id)
        with db.write() as session:
            workers.stop(session, worker_id)
        shutil.rmtree(home, ignore_errors=True)
        logger.info("worker %s stopped", worker_id)
