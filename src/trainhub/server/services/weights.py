"""Storing weights: epoch checkpoints and final weights (docs/protocol/hub-v1.md §5.10).

A received file is verified (non-empty, the sha256 the client claims), published under a key
made of the model id, its kind and its hash, and recorded only after it is durably in place; a
failure after publishing removes it again, and the version it replaced becomes garbage.
"""

from collections.abc import Mapping

from trainhub.protocol.weights import StoredWeights, WeightUpload
from trainhub.server.db import changes, owned
from trainhub.server.db import models as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow
from trainhub.server.errors import BadRequestError, ValidationError
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.storage import BlobWriter, Storage


def read_upload_fields(fields: Mapping[str, str]) -> WeightUpload:
    """Return what an upload's form fields (or tus metadata) say; 422 naming a wrong field."""
    try:
        return WeightUpload.from_fields(fields)
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


def check_writable(db: Database, model_id: str, user_id: str) -> None:
    """Raise (404, 403) unless `user_id` may store weights for the model: before any byte."""
    with db.read() as session:
        owned.load(session, ModelRow, model_id, user_id, write=True)


def store_weights(
    db: Database,
    storage: Storage,
    model_id: str,
    user_id: str,
    upload: WeightUpload,
    writer: BlobWriter,
) -> StoredWeights:
    """Verify a received weights file, publish it, and record it on the model."""
    if writer.size == 0:
        raise ValidationError("the weights file is empty")
    sha256 = writer.hexdigest()
    if upload.sha256 and upload.sha256 != sha256:
        raise BadRequestError(
            "sha256 does not match the bytes received: the file changed or was "
            "damaged in transit; upload it again"
        )
    key = f"models/{model_id}/{upload.kind}-{sha256}"
    writer.publish(key)
    try:
        with db.write() as session:
            row = owned.load(session, ModelRow, model_id, user_id, write=True)
            garbage = queries.record_weights(
                session, row, upload, key=key, sha256=sha256, size=writer.size
            )
            changes.note_model(session, row)
    except BaseException:
        storage.delete(key)
        raise
    delete_garbage(storage, garbage)
    return StoredWeights(
        kind=upload.kind, epoch=upload.epoch, sha256=sha256, size_bytes=writer.size
    )
