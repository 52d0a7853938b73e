"""The query behind a signed download: which stored file a link's object and label name."""

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainhub.protocol.weights import WeightKind
from trainhub.server.db.tables import DatasetRow, ExportRow, ModelRow, ProjectRow, WeightRow
from trainhub.server.links import (
    COVER_LABEL,
    EXPORT_LABEL_PREFIX,
    cover_file_name,
    dataset_file_name,
    export_file_name,
    weight_file_name,
)


@dataclass(frozen=True)
class StoredFile:
    """One version of a downloadable file, and who may read the object it belongs to."""

    key: str
    sha256: str
    name: str
    media_type: str
    owner_id: str
    public: bool

    def is_readable_by(self, reader: str | None) -> bool:
        """Tell whether `reader` (None: anyone) may read the object this file belongs to."""
        return self.public or (reader is not None and reader == self.owner_id)


def _weights(session: Session, model_id: str, kind: WeightKind) -> StoredFile | None:
    found = session.execute(
        select(WeightRow, ModelRow.owner_id, ModelRow.public)
        .join(ModelRow, ModelRow.seq == WeightRow.model_seq)
        .where(ModelRow.id == model_id, ModelRow.deleted_at.is_(None), WeightRow.kind == kind)
    ).first()
    if found is None:
        return None
    weight, owner_id, is_public = found
    name = weight_file_name(model_id, weight)
    return StoredFile(
        weight.blob_key, weight.sha256, name, "application/octet-stream", owner_id, is_public
    )


def _export(session: Session, model_id: str, format_name: str) -> StoredFile | None:
    found = session.execute(
        select(ExportRow, ModelRow.owner_id, ModelRow.public)
        .join(ModelRow, ModelRow.seq == ExportRow.model_seq)
        .where(
            ModelRow.id == model_id,
            ModelRow.deleted_at.is_(None),
            ExportRow.format == format_name,
            ExportRow.status == "done",
        )
        .order_by(ExportRow.finished_at.desc())
        .limit(1)
    ).first()
    if found is None:
        return None
    export, owner_id, is_public = found
    if not export.blob_key or not export.sha256:
        return None
    name = export_file_name(model_id, export)
    media = "application/zip" if name.endswith(".zip") else "application/octet-stream"
    return StoredFile(export.blob_key, export.sha256, name, media, owner_id, is_public)


def _cover(session: Session, project_id: str) -> StoredFile | None:
    project = session.scalars(
        select(ProjectRow).where(ProjectRow.id == project_id, ProjectRow.deleted_at.is_(None))
    ).first()
    if project is None or not project.cover_key or not project.cover_sha256:
        return None
    return StoredFile(
        project.cover_key,
        project.cover_sha256,
        cover_file_name(project),
        project.cover_type or "application/octet-stream",
        project.owner_id,
        project.public,
    )


def _archive(session: Session, dataset_id: str, label: str) -> StoredFile | None:
    dataset = session.scalars(
        select(DatasetRow).where(DatasetRow.id == dataset_id, DatasetRow.deleted_at.is_(None))
    ).first()
    if dataset is None or not dataset.blob_key or not dataset.sha256 or dataset.filename != label:
        return None
    return StoredFile(
        dataset.blob_key,
        dataset.sha256,
        dataset_file_name(dataset),
        "application/zip" if label.lower().endswith(".zip") else "application/x-tar",
        dataset.owner_id,
        dataset.public,
    )


# an image of a dataset's NDJSON export: "img-<sha256>.<suffix>" (services/dataset_exports.py)
_EXPORT_IMAGE = re.compile(r"^img-([0-9a-f]{64})\.([a-z0-9]{1,5})$")
IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif"}


def _export_image(session: Session, dataset_id: str, label: str) -> StoredFile | None:
    match = _EXPORT_IMAGE.match(label)
    dataset = session.scalars(
        select(DatasetRow).where(DatasetRow.id == dataset_id, DatasetRow.deleted_at.is_(None))
    ).first()
    if match is None or dataset is None:
        return None
    sha256, suffix = match.groups()
    media = IMAGE_TYPES.get(suffix, "application/octet-stream")
    name = f"{sha256[:32]}.{suffix}"
    key = f"datasets/{dataset_id}/{label}"
    return StoredFile(key, sha256, name, media, dataset.owner_id, dataset.public)


def find_file(session: Session, object_id: str, label: str) -> StoredFile | None:
    """Return the current file of `object_id` under `label` (weights, export, cover, archive,
    image)."""
    if _EXPORT_IMAGE.match(label):
        return _export_image(session, object_id, label)
    kind = WeightKind.from_filename(label)
    if kind is not None:
        return _weights(session, object_id, kind)
    if label.startswith(EXPORT_LABEL_PREFIX):
        return _export(session, object_id, label.removeprefix(EXPORT_LABEL_PREFIX))
    if label == COVER_LABEL:
        return _cover(session, object_id)
    return _archive(session, object_id, label)
