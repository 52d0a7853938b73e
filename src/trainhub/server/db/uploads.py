"""Queries of resumable (tus) uploads in progress: their target, length and offset."""

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import create_id, is_id
from trainhub.server.db.tables import ResumableUploadRow, utcnow


def create_upload(
    session: Session, owner_id: str, model_id: str, length: int, fields: dict[str, str]
) -> ResumableUploadRow:
    """Record a new upload of `length` bytes for a model, at offset 0."""
    row = ResumableUploadRow(
        id=create_id(), owner_id=owner_id, model_id=model_id, length=length, offset=0, fields=fields
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
