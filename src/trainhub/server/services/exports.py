"""Exports: request one, poll it, list a model's, clear them, and take back abandoned jobs.

See docs/protocol/hub-v1.md §5.12, §5.13 and §5.22. An export turns a model's final weights into
another format; a worker runs it (docs/decisions/0017-job-queue.md). One job exists per model,
format and weights version: asking again for a queued, running or finished export answers that
job, asking again for a failed one queues it anew. New final weights drop the exports of the old
ones (db/models.py), and so does deleting or resetting the model.
"""

import logging
import math
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session

from trainhub.protocol.exports import ExportFormat, ExportStatus, find_format, format_names
from trainhub.protocol.ids import is_id
from trainhub.protocol.weights import WeightKind
from trainhub.server.db import changes, owned, workers
from trainhub.server.db import exports as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ExportRow, ModelRow, WeightRow, utcnow
from trainhub.server.errors import (
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ServiceUnavailableError,
    ValidationError,
)
from trainhub.server.jobs.queue import JobQueue, QueueUnavailableError
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.settings import Settings
from trainhub.server.storage import Storage

logger = logging.getLogger(__name__)
RETRY_AFTER_S = 30  # what a caller over its queued-exports limit is told to wait


@dataclass(frozen=True)
class ExportView:
    """An export job, the id of its model, and whether any worker is alive to run it."""

    row: ExportRow
    model_id: str
    workers_alive: bool


def parse_format(name: str) -> ExportFormat:
    """Return the export format `name` names; 422 listing the formats for anything else."""
    found = find_format(name.strip().lower())
    if found is None:
        raise ValidationError(f"unknown export format {name[:40]!r}; use one of: {format_names()}")
    return found


def _final_weights(session: Session, row: ModelRow) -> WeightRow:
    weights = session.get(WeightRow, (row.seq, WeightKind.FINAL.value))
    if weights is None:
        raise ConflictError(
            f"model {row.id!r} has no final weights to export yet; finish training it (or "
            "upload best.pt) first"
        )
    return weights


def _over_limit(limit: int) -> RateLimitedError:
    reset = math.ceil(time.time()) + RETRY_AFTER_S
    return RateLimitedError(
        f"you have {limit} exports queued or running, the most this server allows "
        f"(max_queued_exports_per_user); wait until one finishes, then request this one again",
        headers={
            "Retry-After": str(RETRY_AFTER_S),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset),
        },
    )


def count_workers(db: Database, settings: Settings) -> int:
    """Return how many worker processes renewed their lease recently."""
    with db.read() as session:
        return len(workers.live_workers(session, settings.job_lease_s))


def workers_alive(db: Database, settings: Settings) -> bool:
    """Tell whether at least one worker reported within the job lease."""
    with db.read() as session:
        return bool(workers.live_workers(session, settings.job_lease_s))


def request_export(
    db: Database,
    queue: JobQueue,
    settings: Settings,
    model_id: str,
    user_id: str,
    format_name: str,
) -> ExportView:
    """Queue an export of the model's final weights (or return the job that already exists)."""
    export_format = parse_format(format_name)
    with db.write() as session:
        model = owned.load(session, ModelRow, model_id, user_id, write=True)
        weights = _final_weights(session, model)
        row = queries.find_export(session, model.seq, export_format.name, weights.sha256)
        fresh = row is None or row.status == ExportStatus.FAILED
        if fresh:
            if queries.count_active(session, user_id) >= settings.max_queued_exports_per_user:
                raise _over_limit(settings.max_queued_exports_per_user)
            if row is None:
                row = queries.create_export(
                    session, model.seq, user_id, export_format.name, weights
                )
            else:
                queries.requeue(row)
            changes.note_model(session, model)
    assert row is not None
    if fresh:
        _enqueue(db, queue, row)
    return ExportView(row, model_id, workers_alive(db, settings))


def _enqueue(db: Database, queue: JobQueue, row: ExportRow) -> None:
    try:
        queue.enqueue_export(row.id)
    except QueueUnavailableError as exc:
        logger.error("export %s not queued: %s", row.id, exc)
        with db.write() as session:
            stored = session.get(ExportRow, row.id)
            if stored is not None and stored.status == ExportStatus.QUEUED:
                stored.status, stored.finished_at = ExportStatus.FAILED.value, utcnow()
                stored.error = "the job queue was unavailable; request the export again"
                queries.note_change(session, stored.id)
        raise ServiceUnavailableError(
            "the job queue is unavailable; try again later (the server log has why)",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        ) from exc
    logger.info("export %s (%s) queued", row.id, row.format)


def poll_export(
    db: Database, settings: Settings, model_id: str, reader_id: str | None, format_name: str
) -> ExportView:
    """Return the newest export of a model in a format; 404 when none was requested."""
    export_format = parse_format(format_name)
    with db.read() as session:
        model = owned.load(session, ModelRow, model_id, reader_id)
        row = queries.newest_export(session, model.seq, export_format.name)
    if row is None:
        raise NotFoundError(f"{export_format.name} export of model", model_id)
    return ExportView(row, model_id, workers_alive(db, settings))


def list_exports(
    db: Database, settings: Settings, model_id: str, reader_id: str | None
) -> list[ExportView]:
    """Return a model's exports, newest first (its export history for the current weights)."""
    with db.read() as session:
        model = owned.load(session, ModelRow, model_id, reader_id)
        rows = queries.list_exports(session, model.seq)
    alive = workers_alive(db, settings) if rows else True
    return [ExportView(row, model_id, alive) for row in rows]


@dataclass(frozen=True)
class ExportHistory:
    """A model's exports, newest first, and whether any worker is alive (the dashboard's panel)."""

    model_id: str
    rows: list[ExportRow]
    workers_alive: bool


def export_history(
    db: Database, settings: Settings, model_id: str, reader_id: str | None
) -> ExportHistory:
    """Return a readable model's exports and the workers' liveness, read in one transaction."""
    with db.read() as session:
        model = owned.load(session, ModelRow, model_id, reader_id)
        rows = queries.list_exports(session, model.seq)
        alive = bool(workers.live_workers(session, settings.job_lease_s))
    return ExportHistory(model_id, rows, alive)


def read_export(
    db: Database, settings: Settings, export_id: str, reader_id: str | None
) -> ExportView:
    """Return one export job by id, if the reader may read its model (404 otherwise)."""
    with db.read() as session:
        row = session.get(ExportRow, export_id) if is_id(export_id) else None
        model = session.get(ModelRow, row.model_seq) if row is not None else None
        if row is None or model is None:
            raise NotFoundError("export", export_id)
        try:
            owned.load(session, ModelRow, model.id, reader_id)
        except NotFoundError:
            raise NotFoundError("export", export_id) from None
    return ExportView(row, model.id, workers_alive(db, settings))


def clear_exports(db: Database, storage: Storage, model_id: str, user_id: str) -> int:
    """Delete every export of a model, running ones included; return how many there were."""
    with db.write() as session:
        model = owned.load(session, ModelRow, model_id, user_id, write=True)
        count = len(queries.list_exports(session, model.seq))
        garbage = queries.delete_exports(session, model.seq)
        changes.note_model(session, model)
    delete_garbage(storage, garbage)
    return count


def take_back_abandoned(db: Database, queue: JobQueue, settings: Settings) -> int:
    """Requeue (or fail, past the attempt limit) exports whose worker went silent.

    Also puts back on the queue exports recorded as queued whose job is not on it (the server
    stopped between recording and queueing, or the queue's storage was replaced). Return how
    many jobs were queued again. A worker calls this at start-up and then every few seconds.
    """
    now = utcnow()
    requeued: list[str] = []
    with db.write() as session:
        for row in queries.stale_running(session, settings.job_lease_s, now):
            again = queries.take_back(row, settings.job_max_attempts, now)
            queries.note_change(session, row.id)
            logger.warning(
                "export %s: its worker %s went silent; %s",
                row.id,
                row.worker_id or "?",
                "queued again" if again else "failed after the last attempt",
            )
            if again:
                requeued.append(row.id)
        lost = [r.id for r in queries.old_queued(session, settings.job_lease_s, now)]
    if lost:
        pending = queue.pending_exports()
        requeued += [export_id for export_id in lost if export_id not in pending]
    for export_id in requeued:
        queue.enqueue_export(export_id)
    return len(requeued)
