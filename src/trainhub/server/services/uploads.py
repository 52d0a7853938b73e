"""Resumable weights uploads (tus 1.0): their bookkeeping, from creation to publication.

The bytes collect in a partial file of the storage backend; the database holds each upload's
target, declared length and acknowledged offset. The last byte publishes the file exactly like
a plain upload (services/weights.py). api/uploads.py speaks the tus protocol over these.
"""

from datetime import timedelta

from trainhub.server.db import owned
from trainhub.server.db import uploads as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow, ResumableUploadRow, utcnow
from trainhub.server.errors import ConflictError, NotFoundError
from trainhub.server.filemodes import create_private_file
from trainhub.server.services.weights import read_upload_fields, store_weights
from trainhub.server.storage import Storage

MAX_ACTIVE_PER_USER = 10
STALE_AFTER = timedelta(hours=24)


def create_upload(
    db: Database, storage: Storage, user_id: str, length: int, fields: dict[str, str]
) -> str:
    """Start an upload of `length` bytes whose metadata `fields` name the model and the weights.

    Uploads nothing appended to for a day are dropped first; a user holds at most
    MAX_ACTIVE_PER_USER at once (409 beyond).
    """
    model_id = fields.get("modelId", "")
    with db.write() as session:
        for stale in queries.stale_uploads(session, STALE_AFTER):
            storage.partial_path(stale.id).unlink(missing_ok=True)
            session.delete(stale)
        owned.load(session, ModelRow, model_id, user_id, write=True)
        if queries.count_uploads(session, user_id) >= MAX_ACTIVE_PER_USER:
            raise ConflictError(
                f"you have {MAX_ACTIVE_PER_USER} unfinished uploads; finish or "
                "DELETE one before starting another"
            )
        row = queries.create_upload(session, user_id, model_id, length, fields)
    create_private_file(storage.partial_path(row.id))
    return row.id


def load_upload(db: Database, upload_id: str, user_id: str) -> ResumableUploadRow:
    """Return one of the user's uploads (404 for anyone else's or an unknown one)."""
    with db.read() as session:
        row = queries.find_upload(session, upload_id)
    if row is None or row.owner_id != user_id:
        raise NotFoundError("upload", upload_id)
    return row


def save_offset(db: Database, upload_id: str, offset: int) -> None:
    """Acknowledge the bytes up to `offset`."""
    with db.write() as session:
        row = queries.find_upload(session, upload_id)
        if row is None:  # terminated while a PATCH ran (by another replica)
            raise NotFoundError("upload", upload_id)
        row.offset, row.updated_at = offset, utcnow()


def discard_upload(db: Database, storage: Storage, upload_id: str) -> None:
    """Forget an upload and free the space its bytes take."""
    with db.write() as session:
        row = queries.find_upload(session, upload_id)
        if row is not None:
            session.delete(row)
    storage.partial_path(upload_id).unlink(missing_ok=True)


def finish_upload(db: Database, storage: Storage, row: ResumableUploadRow) -> None:
    """Publish a complete upload as the model's weights; the upload is gone either way."""
    writer = storage.adopt(storage.partial_path(row.id))
    try:
        upload = read_upload_fields(row.fields)
        store_weights(db, storage, row.model_id, row.owner_id, upload, writer)
    except BaseException:
        writer.abort()
        raise
    finally:
        discard_upload(db, storage, row.id)
