"""Weights of Platform runs: upload URLs, the PUT that stages a file, and its promotion.

ultralytics 8.4 asks for an upload URL, PUTs the file there without a key, then reports
`checkpoint_saved` naming the upload; only that event (or `training_complete` naming the file)
makes the file the model's weights (docs/protocol/platform.md §9.7). A staged file that no event
promoted is removed after its URL expired.
"""

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from trainhub.protocol.platform import CheckpointSaved, UploadRequest, is_weights_file
from trainhub.server.db import owned
from trainhub.server.db import platform_runs as run_queries
from trainhub.server.db import staging as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow, StagedUploadRow, utcnow
from trainhub.server.errors import ConflictError, ForbiddenError, NotFoundError, ValidationError
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.services.names import find_named_model
from trainhub.server.services.runs import Silence, current_run
from trainhub.server.storage import BlobWriter, Storage

SWEEP_GRACE = timedelta(hours=1)  # a promotion may come a little after the URL expired


@dataclass(frozen=True)
class IssuedUpload:
    """An upload URL's parts: the upload, its model, and until when it accepts bytes."""

    upload_id: str
    model_id: str
    path: str
    expires: int  # Unix seconds


def _sweep(session: Session) -> list[str]:
    """Forget uploads expired a while ago that hold no weights; return their blob keys."""
    garbage = []
    for upload in queries.expired_uploads(session, utcnow() - SWEEP_GRACE):
        if upload.state == "received" and upload.blob_key:
            garbage.append(upload.blob_key)
        session.delete(upload)
    return garbage


def issue_upload(
    db: Database,
    storage: Storage,
    user_id: str,
    user_name: str,
    request: UploadRequest,
    ttl_s: int,
) -> IssuedUpload:
    """Hand out an upload for a model's weights file, valid for `ttl_s` seconds."""
    if not is_weights_file(request.filename):
        raise ValidationError(
            f"filename {request.filename[:60]!r} must be a plain weights file name such as best.pt"
        )
    now = utcnow()
    with db.write() as session:
        garbage = _sweep(session)
        if request.modelId is not None:
            row = owned.load(session, ModelRow, request.modelId, user_id, write=True)
        else:
            row = find_named_model(
                session, user_id, user_name, request.project or "", request.name or ""
            )
            owned.load(session, ModelRow, row.id, user_id, write=True)
        run = run_queries.find_run(session, row.seq, request.runId) if request.runId else None
        upload = queries.create_upload(
            session,
            row,
            run_id=run.id if run is not None else None,
            filename=request.filename,
            expires_at=now + timedelta(seconds=ttl_s),
        )
        issued = IssuedUpload(
            upload.id, row.id, queries.storage_path(upload.id), int(now.timestamp()) + ttl_s
        )
    delete_garbage(storage, garbage)
    return issued


class ExpiredUploadError(ForbiddenError):
    """An upload URL past its time: 403, like an expired presigned URL (the client gives up)."""


def _load_open(session: Session, upload_id: str, *, lock: bool) -> tuple[StagedUploadRow, ModelRow]:
    """Return an upload that still takes bytes, and its model; 404 or 409 otherwise."""
    upload = queries.find_upload(session, upload_id, lock=lock)
    row = session.get(ModelRow, upload.model_seq) if upload is not None else None
    if upload is None or row is None or row.deleted_at is not None:
        raise NotFoundError("upload", upload_id)
    if upload.state == "superseded":
        raise ConflictError("newer weights replaced this upload's; nothing is stored")
    if upload.expires_at < utcnow():
        raise ExpiredUploadError("the upload URL expired; the trainer asks for a new one")
    return upload, row


def check_receivable(db: Database, upload_id: str) -> None:
    """Raise unless the upload still accepts bytes: before any byte is read."""
    with db.read() as session:
        _load_open(session, upload_id, lock=False)


def receive_upload(db: Database, storage: Storage, upload_id: str, writer: BlobWriter) -> str:
    """Stage the bytes PUT to an upload URL; return their sha256. A repeat replaces them.

    Once promoted, an upload takes only the same bytes again (a retry after a lost answer).
    """
    if writer.size == 0:
        raise ValidationError("the file is empty; PUT the weights file's bytes")
    sha256 = writer.hexdigest()
    with db.read() as session:
        upload, row = _load_open(session, upload_id, lock=False)
    if upload.state == "promoted":
        writer.abort()
        if upload.sha256 != sha256:
            raise ConflictError("these weights are the model's already; PUT the same file again")
        return sha256
    key = queries.blob_key(row.id, upload.id, sha256)
    stored_before = upload.blob_key  # the same bytes again publish over themselves
    writer.publish(key)
    try:
        with db.write() as session:
            upload, row = _load_open(session, upload_id, lock=True)
            if upload.state == "promoted":
                raise ConflictError("the upload was promoted while these bytes arrived")
            replaced = upload.blob_key
            upload.blob_key, upload.sha256, upload.size_bytes = key, sha256, writer.size
            upload.state, upload.received_at = "received", utcnow()
    except BaseException:
        if key != stored_before:
            storage.delete(key)
        raise
    if replaced and replaced != key:
        storage.delete(replaced)
    return sha256


def save_checkpoint(
    db: Database,
    storage: Storage,
    user_id: str,
    model_id: str,
    data: CheckpointSaved,
    silence: Silence,
) -> str | None:
    """Promote the upload `checkpoint_saved` names; return why nothing changed, if it did not."""
    upload_id = queries.upload_id_of(data.modelPath)
    if upload_id is None:
        raise ValidationError(
            f"modelPath {data.modelPath[:80]!r} is not a path this hub handed out as gcsPath"
        )
    now = utcnow()
    reason, garbage = None, []
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        run = current_run(session, row, user_id, now, silence)
        upload = queries.find_upload(session, upload_id, lock=True)
        if upload is None or upload.model_seq != row.seq:
            raise NotFoundError("upload", data.modelPath)
        if data.runId is not None and upload.run_id is not None and data.runId != upload.run_id:
            reason = f"the upload belongs to run {upload.run_id}, not {data.runId}"
        elif upload.state == "issued":
            raise ValidationError("no file was PUT to this upload's URL yet; PUT it first")
        elif upload.state == "superseded":
            reason = "newer weights were promoted already"
        elif upload.state == "received":
            epoch = run.last_epoch if run.last_epoch is not None else row.last_epoch or 0
            garbage = queries.promote(session, row, upload, epoch=epoch, now=now)
            reason = "newer weights were promoted already" if upload.state != "promoted" else None
        run_queries.note_event(session, row, run, now, silence.of(run))
    delete_garbage(storage, garbage)
    return reason
