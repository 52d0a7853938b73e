"""Queries of worker processes: register, report, stop, and which ones are alive."""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from trainhub.server.db import changes
from trainhub.server.db.tables import WorkerRow, utcnow

FORGET_AFTER = timedelta(days=7)


def register(
    session: Session, worker_id: str, name: str, threads: int, info: dict[str, Any]
) -> None:
    """Record a worker that starts; workers not seen for a week are forgotten."""
    now = utcnow()
    session.execute(delete(WorkerRow).where(WorkerRow.seen_at < now - FORGET_AFTER))
    session.add(
        WorkerRow(id=worker_id, name=name, threads=threads, info=info, started_at=now, seen_at=now)
    )
    changes.note(session, None, None)  # every model page says whether a worker is alive


def report(session: Session, worker_id: str) -> None:
    """Note that the worker is alive."""
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(seen_at=utcnow()))


def stop(session: Session, worker_id: str) -> None:
    """Note that the worker stopped on purpose."""
    session.execute(update(WorkerRow).where(WorkerRow.id == worker_id).values(stopped_at=utcnow()))
    changes.note(session, None, None)  # every model page says whether a worker is alive


def live_workers(session: Session, lease_s: float, now: datetime | None = None) -> list[WorkerRow]:
    """Return the workers that reported within `lease_s` seconds and did not stop."""
    cutoff = (now or utcnow()) - timedelta(seconds=lease_s)
    return list(
        session.scalars(
            select(WorkerRow)
            .where(WorkerRow.seen_at >= cutoff, WorkerRow.stopped_at.is_(None))
            .order_by(WorkerRow.started_at)
        )
    )
