"""`trainhub worker`: run exports and predictions from the hub's job queue.

A worker finds the hub's database, storage and queue as the server does (--data-dir,
--database-url, --storage-url, --redis-url or TRAINHUB_* variables). It needs the export extra
(torch, ultralytics, onnxruntime); run as many as the machine allows, here or on other machines
that share the database, storage and Redis (docs/server.md, Workers).
"""

import logging
import os
import signal
import sys
import threading
from pathlib import Path

import typer

from trainhub.cli.hub import fail
from trainhub.cli.startup import (
    EXPORT_EXTRA,
    check_data_dir,
    load_settings,
    missing_export_modules,
    open_database,
    require_server_stack,
)

logger = logging.getLogger(__name__)


def _stop_when_stdin_closes() -> None:
    """SIGTERM ourselves when stdin closes: the server that started this worker is gone."""

    def watch() -> None:
        while sys.stdin.buffer.read(1):
            pass
        logger.info("the server that started this worker is gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def worker(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="The hub's data directory (TRAINHUB_DATA_DIR).", show_default=False
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="The hub's database (TRAINHUB_DATABASE_URL).",
        show_default=False,
    ),
    storage_url: str | None = typer.Option(
        None, "--storage-url", help="The hub's storage (TRAINHUB_STORAGE_URL).", show_default=False
    ),
    redis_url: str | None = typer.Option(
        None,
        "--redis-url",
        help="The queue on Redis (TRAINHUB_REDIS_URL); default: the SQLite queue in the data "
        "directory.",
        show_default=False,
    ),
    threads: int | None = typer.Option(
        None, "--threads", min=1, help="Jobs run at once (TRAINHUB_WORKER_THREADS; 2)."
    ),
    embedded: bool = typer.Option(False, "--embedded", hidden=True),
) -> None:
    """Run a worker: exports and predictions from the hub's job queue."""
    require_server_stack("worker")
    missing = missing_export_modules()
    if missing:
        fail(
            f"`trainhub worker` needs the export extra, which is not installed (no module "
            f"{missing[0]!r}); install it with: {EXPORT_EXTRA}"
        )
    from trainhub.server.filemodes import restrict_umask

    restrict_umask()
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        storage_url=storage_url,
        redis_url=redis_url,
        worker_threads=threads,
    )
    check_data_dir(settings.data_dir)
    if embedded:
        _stop_when_stdin_closes()
    logging.getLogger("huey").setLevel(max(logging.WARNING, logging.root.level))
    from trainhub.worker.runner import run_worker

    with open_database(settings.data_dir, settings.database_url, announce=False) as db:
        run_worker(settings, db)
