"""Queries of export jobs: create, claim, report, finish, fail, take back, list and delete.

A job moves queued -> running -> done | failed. Every change a worker makes names the worker and
is conditional on the job still being its own and running, so a worker that was presumed dead
and comes back cannot overwrite what another worker did (docs/decisions/0017-job-queue.md).
Functions take a session inside the caller's transaction; those that drop files return their
storage keys for the caller to delete once the transaction committed.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, CursorResult, Executable, delete, func, select, update
from sqlalchemy.orm import Session

from trainhub.protocol.exports import ExportStatus
from trainhub.protocol.ids import create_id
from trainhub.server.db import changes
from trainhub.server.db.tables import ExportRow, ModelRow, WeightRow, utcnow

QUEUED, RUNNING = ExportStatus.QUEUED.value, ExportStatus.RUNNING.value
DONE, FAILED = ExportStatus.DONE.value, ExportStatus.FAILED.value
ACTIVE = (QUEUED, RUNNING)


def _changed(session: Session, statement: Executable) -> int:
    """Run an UPDATE and return how many rows it changed."""
    return cast(CursorResult[tuple[()]], session.execute(statement)).rowcount


def find_export(
    session: Session, model_seq: int, format_name: str, weights_sha256: str
) -> ExportRow | None:
    """Return the export of these weights in this format, if one was requested."""
    return session.scalars(
        select(ExportRow).where(
            ExportRow.model_seq == model_seq,
            ExportRow.format == format_name,
            ExportRow.weights_sha256 == weights_sha256,
        )
    ).first()


def newest_export(session: Session, model_seq: int, format_name: str) -> ExportRow | None:
    """Return the most recently requested export of a model in a format."""
    return session.scalars(
        select(ExportRow)
        .where(ExportRow.model_seq == model_seq, ExportRow.format == format_name)
        .order_by(ExportRow.created_at.desc())
        .limit(1)
    ).first()


def create_export(
    session: Session, model_seq: int, user_id: str, format_name: str, weights: WeightRow
) -> ExportRow:
    """Record a new queued export of `weights`."""
    row = ExportRow(
        id=create_id(),
        model_seq=model_seq,
        requested_by=user_id,
        format=format_name,
        weights_key=weights.blob_key,
        weights_sha256=weights.sha256,
        status=QUEUED,
    )
    session.add(row)
    session.flush()
    return row


def requeue(row: ExportRow) -> None:
    """Put a failed export back in the queue (a new request for it)."""
    row.status, row.error, row.attempts, row.worker_id = QUEUED, None, 0, None
    row.queued_at, row.started_at, row.heartbeat_at, row.finished_at = utcnow(), None, None, None


def count_active(session: Session, user_id: str) -> int:
    """Return how many of a user's exports are queued or running."""
    return (
        session.scalar(
            select(func.count())
            .select_from(ExportRow)
            .where(ExportRow.requested_by == user_id, ExportRow.status.in_(ACTIVE))
        )
        or 0
    )


def list_exports(session: Session, model_seq: int) -> list[ExportRow]:
    """Return a model's exports, newest first."""
    return list(
        session.scalars(
            select(ExportRow)
            .where(ExportRow.model_seq == model_seq)
            .order_by(ExportRow.created_at.desc(), ExportRow.id)
        )
    )


def done_export(
    session: Session, model_seq: int, format_name: str, sha256: str
) -> ExportRow | None:
    """Return the finished export of these weights in this format, if there is one."""
    row = find_export(session, model_seq, format_name, sha256)
    return row if row is not None and row.status == DONE else None


def delete_exports(session: Session, model_seq: int, keep_weights: str | None = None) -> list[str]:
    """Delete a model's exports (except those of the weights `keep_weights`); return file keys."""
    where = [ExportRow.model_seq == model_seq]
    if keep_weights is not None:
        where.append(ExportRow.weights_sha256 != keep_weights)
    keys = [k for k in session.scalars(select(ExportRow.blob_key).where(*where)) if k]
    session.execute(delete(ExportRow).where(*where))
    return keys


@dataclass(frozen=True)
class ClaimedExport:
    """What a worker needs to run an export it claimed."""

    id: str
    model_id: str
    format: str
    weights_key: str
    weights_sha256: str
    attempt: int


def note_change(session: Session, export_id: str) -> None:
    """Write that an export of a model changed (its model's page shows the export's state)."""
    found = session.execute(
        select(ModelRow.id, ModelRow.owner_id)
        .join(ExportRow, ExportRow.model_seq == ModelRow.seq)
        .where(ExportRow.id == export_id)
    ).first()
    if found is not None:
        changes.note(session, found.id, found.owner_id)


def claim(session: Session, export_id: str, worker_id: str) -> ClaimedExport | None:
    """Move a queued export to running for `worker_id`; None when it is not queued any more."""
    now = utcnow()
    claimed = _changed(
        session,
        update(ExportRow)
        .where(ExportRow.id == export_id, ExportRow.status == QUEUED)
        .values(
            status=RUNNING,
            worker_id=worker_id,
            attempts=ExportRow.attempts + 1,
            started_at=now,
            heartbeat_at=now,
        ),
    )
    if not claimed:
        return None
    found = session.execute(
        select(ExportRow, ModelRow.id)
        .join(ModelRow, ModelRow.seq == ExportRow.model_seq)
        .where(ExportRow.id == export_id)
    ).one()
    row, model_id = found
    note_change(session, export_id)
    return ClaimedExport(
        row.id, model_id, row.format, row.weights_key, row.weights_sha256, row.attempts
    )


def _mine(export_id: str, worker_id: str) -> list[ColumnElement[bool]]:
    return [
        ExportRow.id == export_id,
        ExportRow.status == RUNNING,
        ExportRow.worker_id == worker_id,
    ]


def report(session: Session, export_id: str, worker_id: str) -> bool:
    """Note that the worker still runs the export; False when it is not its job any more."""
    return bool(
        _changed(
            session,
            update(ExportRow).where(*_mine(export_id, worker_id)).values(heartbeat_at=utcnow()),
        )
    )


def finish(
    session: Session, export_id: str, worker_id: str, *, key: str, sha256: str, size: int
) -> bool:
    """Record the published file of a running export; False when the job is gone or not its own."""
    done = _changed(
        session,
        update(ExportRow)
        .where(*_mine(export_id, worker_id))
        .values(status=DONE, blob_key=key, sha256=sha256, size_bytes=size, finished_at=utcnow()),
    )
    if done:
        note_change(session, export_id)
    return bool(done)


def fail(session: Session, export_id: str, worker_id: str, error: str) -> bool:
    """Mark a running export failed with its reason; False when it is not the worker's job."""
    failed = _changed(
        session,
        update(ExportRow)
        .where(*_mine(export_id, worker_id))
        .values(status=FAILED, error=error, finished_at=utcnow()),
    )
    if failed:
        note_change(session, export_id)
    return bool(failed)


def stale_running(session: Session, lease_s: float, now: datetime) -> list[ExportRow]:
    """Return running exports whose worker has not reported for `lease_s` seconds."""
    cutoff = now - timedelta(seconds=lease_s)
    return list(
        session.scalars(
            select(ExportRow)
            .where(ExportRow.status == RUNNING, ExportRow.heartbeat_at < cutoff)
            .with_for_update()
        )
    )


def old_queued(session: Session, older_than_s: float, now: datetime) -> list[ExportRow]:
    """Return exports queued for longer than `older_than_s` seconds."""
    cutoff = now - timedelta(seconds=older_than_s)
    return list(
        session.scalars(
            select(ExportRow).where(ExportRow.status == QUEUED, ExportRow.queued_at < cutoff)
        )
    )


def release(row: ExportRow, now: datetime) -> None:
    """Queue a running export again without counting the attempt (its worker stops cleanly)."""
    row.status, row.worker_id, row.queued_at = QUEUED, None, now
    row.started_at = row.heartbeat_at = None
    row.attempts = max(0, row.attempts - 1)


def take_back(row: ExportRow, max_attempts: int, now: datetime) -> bool:
    """Requeue an export whose worker went silent, or fail it after `max_attempts`.

    Return True when it was queued again (the caller puts it back on the queue).
    """
    if row.attempts < max_attempts:
        row.status, row.worker_id, row.queued_at = QUEUED, None, now
        row.started_at = row.heartbeat_at = None
        return True
    row.status, row.finished_at = FAILED, now
    row.error = (
        f"the worker running this export stopped answering {row.attempts} time(s) (killed, "
        "out of memory or crashed) and it was not tried again; check the worker's log and "
        "memory, then request the export again"
    )
    return False
