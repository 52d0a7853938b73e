"""Queries of staged Platform uploads: issue, find, promote, and sweep expired ones.

An upload URL names a row here. The PUT stores its bytes under a key of their own
(`models/<model id>/platform-<upload id>-<sha256 prefix>`), so a staged file never shares a blob
with another upload or a HUB upload;
promotion records that blob as the model's weights, and the upload it replaces is superseded
(docs/protocol/platform.md §9.7).
"""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import create_id, is_id
from trainhub.protocol.weights import WeightKind, WeightUpload
from trainhub.server.db import models as model_queries
from trainhub.server.db.tables import ModelRow, StagedUploadRow

SWEEP_BATCH = 20
PATH_PREFIX = "platform-uploads/"


def storage_path(upload_id: str) -> str:
    """Return the opaque `gcsPath` of an upload, which the client echoes as `modelPath`."""
    return PATH_PREFIX + upload_id


def upload_id_of(path: str) -> str | None:
    """Return the upload id a `gcsPath`/`modelPath` names, None when it names none of ours."""
    upload_id = path.removeprefix(PATH_PREFIX)
    return upload_id if path.startswith(PATH_PREFIX) and is_id(upload_id) else None


def blob_key(model_id: str, upload_id: str, sha256: str) -> str:
    """Return the storage key of bytes PUT to an upload (a repeat of the same bytes: same key)."""
    return f"models/{model_id}/platform-{upload_id}-{sha256[:16]}"


def create_upload(
    session: Session, row: ModelRow, *, run_id: int | None, filename: str, expires_at: datetime
) -> StagedUploadRow:
    """Issue an upload for a model's weights file."""
    upload = StagedUploadRow(
        id=create_id(), model_seq=row.seq, run_id=run_id, filename=filename, expires_at=expires_at
    )
    session.add(upload)
    session.flush()
    return upload


def find_upload(session: Session, upload_id: str, *, lock: bool = False) -> StagedUploadRow | None:
    """Return the staged upload `upload_id`."""
    query = select(StagedUploadRow).where(StagedUploadRow.id == upload_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def promoted_upload(session: Session, model_seq: int) -> StagedUploadRow | None:
    """Return the upload that holds the model's weights now, if one does."""
    return session.scalars(
        select(StagedUploadRow).where(
            StagedUploadRow.model_seq == model_seq, StagedUploadRow.state == "promoted"
        )
    ).first()


def promote(
    session: Session, row: ModelRow, upload: StagedUploadRow, *, epoch: int, now: datetime
) -> list[str]:
    """Make a received upload the model's final weights; return the blob keys now garbage.

    Only forward: an upload older than the promoted one is superseded instead (a late or
    repeated event must not bring back older weights). The model's status does not change here:
    the end of the run decides it.
    """
    current = promoted_upload(session, row.seq)
    if current is not None and current.id != upload.id and current.created_at > upload.created_at:
        upload.state = "superseded"
        return [upload.blob_key] if upload.blob_key else []
    if upload.blob_key is None or upload.sha256 is None:
        raise ValueError(f"upload {upload.id} holds no bytes yet; it cannot be promoted")
    weights = WeightUpload(WeightKind.FINAL, epoch, is_best=True, sha256=upload.sha256)
    garbage = model_queries.record_weights(
        session,
        row,
        weights,
        key=upload.blob_key,
        sha256=upload.sha256,
        size=upload.size_bytes or 0,
        settle=False,
    )
    if current is not None and current.id != upload.id:
        current.state = "superseded"
    upload.state, upload.promoted_at = "promoted", now
    return garbage


def expired_uploads(session: Session, before: datetime) -> list[StagedUploadRow]:
    """Return some uploads that expired before `before` and hold no model's weights."""
    return list(
        session.scalars(
            select(StagedUploadRow)
            .where(StagedUploadRow.expires_at < before, StagedUploadRow.state != "promoted")
            .limit(SWEEP_BATCH)
        )
    )


def blob_keys_of(session: Session, model_seq: int) -> list[str]:
    """Return the blob keys of a model's staged uploads that are not its weights."""
    return [
        key
        for key in session.scalars(
            select(StagedUploadRow.blob_key).where(
                StagedUploadRow.model_seq == model_seq, StagedUploadRow.state == "received"
            )
        )
        if key
    ]
