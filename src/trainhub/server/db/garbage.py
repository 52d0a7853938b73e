"""Queries of the clean-up (services/gc.py): which blobs rows refer to, which uploads are dead."""

from datetime import datetime

from sqlalchemy import CompoundSelect, delete, select, union
from sqlalchemy.orm import Session

from trainhub.server.db.tables import (
    DatasetExportRow,
    DatasetRow,
    ExportRow,
    ProjectRow,
    ResumableUploadRow,
    StagedUploadRow,
    WeightRow,
)


def referenced_keys(session: Session) -> set[str]:
    """Return every blob key a row refers to: weights, dataset archives, project covers, export
    files, weights staged by an 8.4 run, and the manifests and images of NDJSON dataset exports.

    Soft-deleted models, datasets and projects keep their files, so their keys count too.
    """
    query: CompoundSelect[tuple[str | None]] = union(
        select(WeightRow.blob_key),
        select(DatasetRow.blob_key).where(DatasetRow.blob_key.is_not(None)),
        select(ProjectRow.cover_key).where(ProjectRow.cover_key.is_not(None)),
        select(ExportRow.blob_key).where(ExportRow.blob_key.is_not(None)),
        select(StagedUploadRow.blob_key).where(StagedUploadRow.blob_key.is_not(None)),
        select(DatasetExportRow.manifest_key),
    )
    keys = {str(key) for key in session.scalars(query)}
    for blob_keys in session.scalars(select(DatasetExportRow.blob_keys)):  # a JSON list each
        keys.update(str(key) for key in blob_keys or ())
    return keys


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
