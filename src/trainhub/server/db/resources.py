"""Queries of datasets and projects: create, change, delete (models have db/models.py)."""

from typing import Any, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from trainhub.protocol.ids import create_id
from trainhub.server.db import dataset_exports, owned
from trainhub.server.db.tables import DatasetRow, ModelRow, ProjectRow, utcnow
from trainhub.server.documents import check_document, deep_merge, display_name
from trainhub.server.errors import ValidationError

Resource = DatasetRow | ProjectRow
R = TypeVar("R", DatasetRow, ProjectRow)
DATASET_KEYS = frozenset({"filename", "layout", "status"})


def _apply(row: Resource, doc: dict[str, Any]) -> None:
    row.public = bool(doc.pop("public", row.public))
    row.name = display_name(
        doc, row.name or ("dataset" if isinstance(row, DatasetRow) else "project")
    )
    if isinstance(row, DatasetRow):
        filename = doc.pop("filename", None)
        if filename is not None and not row.sha256:
            row.filename = check_filename(filename)
    row.doc = doc
    owned.touch(row)


def check_filename(value: Any) -> str:
    """Return an archive file name if acceptable (a bare name ending in .zip/.tar/.tar.gz)."""
    from trainhub.server.archives import is_archive_name

    if not isinstance(value, str) or not is_archive_name(value):
        raise ValidationError(
            "filename must be a bare file name ending in .zip, .tar, .tar.gz or .tgz (no folders)"
        )
    return value


def create(session: Session, row_type: type[R], user_id: str, body: dict[str, Any]) -> R:
    """Create a dataset or project from its owner's document."""
    row = row_type(id=create_id(), owner_id=user_id)
    _apply(row, dict(check_document(body)))
    session.add(row)
    session.flush()
    return row


def change(row: Resource, patch: dict[str, Any]) -> None:
    """Deep-merge `patch` into a dataset's or project's document."""
    check_document(patch)
    _apply(row, deep_merge({**row.doc, "public": row.public}, patch))


def remove(session: Session, row: Resource, *, hard: bool) -> list[str]:
    """Delete a dataset or project; return the blob keys that became garbage (hard only)."""
    column = ModelRow.dataset_id if isinstance(row, DatasetRow) else ModelRow.project_id
    if not hard:
        row.deleted_at = utcnow()
        return []
    session.execute(update(ModelRow).where(column == row.id).values({column.key: None}))
    key = row.blob_key if isinstance(row, DatasetRow) else row.cover_key
    garbage = [key] if key else []
    if isinstance(row, DatasetRow):  # its NDJSON exports go with it (their rows by cascade)
        garbage += dataset_exports.all_keys(session, [row.seq])
    session.delete(row)
    return garbage


def model_counts(session: Session, project_ids: list[str]) -> dict[str, int]:
    """Return how many live models each project holds."""
    if not project_ids:
        return {}
    rows = session.execute(
        select(ModelRow.project_id, func.count())
        .where(ModelRow.project_id.in_(project_ids), ModelRow.deleted_at.is_(None))
        .group_by(ModelRow.project_id)
    )
    return {project_id: count for project_id, count in rows if project_id}
