"""Queries of the clean-up (services/gc.py): which blobs rows refer to, which uploads are dead."""

from datetime import datetime

from sqlalchemy import CompoundSelect, delete, select, union
from sqlalchemy.orm import Session

from trainhub.server.db.tables import DatasetRow, ProjectRow, ResumableUploadRow, WeightRow


def referenced_keys(session: Session) -> set[str]:
    """Return every blob key a row refers to: weights, dataset archives, project covers.

    Soft-deleted models, datasets and projects keep their files, so their keys count too.
    """
    query: CompoundSelect[tuple[str | None]] = union(
        select(WeightRow.blob_key),
        select(DatasetRow.blob_key).where(DatasetRow.blob_key.is_not(None)),
        select(ProjectRow.cover_key).where(ProjectRow.cover_key.is_not(None)),
    )
    return {str(key) for key in session.scalars(query)}


def upload_ids(session: Session) -> set[str]:
    """Return the ids of every resumable upload in progress."""
    return set(session.scalars(select(ResumableUploadRow.id)))


def idle_uploads(session: Session, before: datetime) -> list[ResumableUploadRow]:
    """Return the resumable uploads nothing was appended to since `before`, oldest first."""
    query = select(ResumableUploadRow).where(ResumableUploadRow.updated_at < before)
    return list(session.scalars(query.order_by(ResumableUploadRow.updated_at)))


def delete_idle_upload(session: Session, upload_id: str, before: datetime) -> bool:
    """Delete an upload if it is still idle since `before`; tell whether it was deleted."""
    result = session.execute(
        delete(ResumableUploadRow).where(
            ResumableUploadRow.id == upload_id, ResumableUploadRow.updated_at < before
        )
    )
    return bool(getattr(result, "rowcount", 0))
