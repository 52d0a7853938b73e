"""Queries of resumable (tus) uploads in progress: their target, length, offset and state."""

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from trainhub.protocol.ids import is_id
from trainhub.server.db.tables import ResumableUploadRow, utcnow


def create_upload(
    session: Session,
    upload_id: str,
    owner_id: str,
    model_id: str,
    length: int,
    fields: dict[str, str],
    state: dict[str, Any],
) -> ResumableUploadRow:
    """Record a new upload of `length` bytes for a model, at offset 0."""
    row = ResumableUploadRow(
        id=upload_id,
        owner_id=owner_id,
        model_id=model_id,
        length=length,
        offset=0,
        fields=fields,
        state=state,
    )
    session.add(row)
    session.flush()
    return row


def find_upload(session: Session, upload_id: str) -> ResumableUploadRow | None:
    """Return the upload `upload_id`, None when there is none."""
    return session.get(ResumableUploadRow, upload_id) if is_id(upload_id) else None


def count_uploads(session: Session, owner_id: str) -> int:
    """Return how many uploads a user has in progress."""
    query = select(func.count()).select_from(ResumableUploadRow)
    return session.scalar(query.where(ResumableUploadRow.owner_id == owner_id)) or 0


def stale_uploads(session: Session, idle: timedelta) -> list[ResumableUploadRow]:
    """Return the uploads nothing was appended to for `idle`."""
    cutoff = utcnow() - idle
    return list(
        session.scalars(select(ResumableUploadRow).where(ResumableUploadRow.updated_at < cutoff))
    )


def advance_upload(
    session: Session, upload_id: str, expected: int, offset: int, state: dict[str, Any]
) -> bool:
    """Move an upload from offset `expected` to `offset` with its new `state`.

    A compare-and-set: it does nothing and answers False when the offset is no longer
    `expected` (another request, on any replica, recorded bytes first) or the upload is gone.
    """
    result = session.execute(
        update(ResumableUploadRow)
        .where(ResumableUploadRow.id == upload_id, ResumableUploadRow.offset == expected)
        .values(offset=offset, state=state, updated_at=utcnow())
    )
    return bool(getattr(result, "rowcount", 0))


def reserve_part(session: Session, upload_id: str) -> int | None:
    """Return the next part number of an upload, never handed out before (None: no upload)."""
    result = session.execute(
        update(ResumableUploadRow)
        .where(ResumableUploadRow.id == upload_id)
        .values(last_part=ResumableUploadRow.last_part + 1)
        .returning(ResumableUploadRow.last_part)
    )
    return result.scalar_one_or_none()
