"""Resumable weights uploads (tus 1.0): their bookkeeping, from creation to publication.

The bytes collect where every replica reaches them (the storage folder's `partial/`, or an S3
multipart upload); the database holds each upload's target, declared length, acknowledged offset
and the storage's state. The offset moves only by compare-and-set, so two requests on two
replicas never both append from the same offset. The last byte publishes the file exactly like a
plain upload (services/weights.py). api/uploads.py speaks the tus protocol over these;
docs/decisions/0022-resumable-uploads-on-any-replica.md says why it is built so.
"""

from datetime import timedelta
from functools import partial

from trainhub.protocol.ids import create_id
from trainhub.server.db import owned
from trainhub.server.db import uploads as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow, ResumableUploadRow
from trainhub.server.errors import ConflictError, NotFoundError
from trainhub.server.services.weights import read_upload_fields, store_weights
from trainhub.server.storage import Storage
from trainhub.server.storage.base import PartialConflictError, PartialLostError, Progress

MAX_ACTIVE_PER_USER = 10
STALE_AFTER = timedelta(hours=24)
_RESUME_HINT = "send HEAD to learn where to resume"


def create_upload(
    db: Database, storage: Storage, user_id: str, length: int, fields: dict[str, str]
) -> str:
    """Start an upload of `length` bytes whose metadata `fields` name the model and the weights.

    Uploads nothing appended to for a day are dropped first; a user holds at most
    MAX_ACTIVE_PER_USER at once (409 beyond). Storage makes room before the row exists, so a
    row always has its bytes' place; a place without a row is removed by the clean-up.
    """
    model_id = fields.get("modelId", "")
    with db.write() as session:
        stale = []
        for row in queries.stale_uploads(session, STALE_AFTER):
            stale.append(row.id)
            session.delete(row)
        owned.load(session, ModelRow, model_id, user_id, write=True)
        if queries.count_uploads(session, user_id) >= MAX_ACTIVE_PER_USER:
            raise ConflictError(
                f"you have {MAX_ACTIVE_PER_USER} unfinished uploads; finish or "
                "DELETE one before starting another"
            )
    for upload_id in stale:
        storage.discard_partial(upload_id)
    upload_id = create_id()
    state = storage.start_partial(upload_id)
    try:
        with db.write() as session:
            queries.create_upload(session, upload_id, user_id, model_id, length, fields, state)
    except BaseException:
        storage.discard_partial(upload_id)
        raise
    return upload_id


def load_upload(db: Database, upload_id: str, user_id: str) -> ResumableUploadRow:
    """Return one of the user's uploads (404 for anyone else's or an unknown one)."""
    with db.read() as session:
        row = queries.find_upload(session, upload_id)
    if row is None or row.owner_id != user_id:
        raise NotFoundError("upload", upload_id)
    return row


def _reserve_part(db: Database, upload_id: str) -> int:
    with db.write() as session:
        number = queries.reserve_part(session, upload_id)
    if number is None:  # terminated meanwhile (by another replica)
        raise NotFoundError("upload", upload_id)
    return number


class Appending:
    """One request's bytes going into an upload, from the offset the row records.

    Each step that makes bytes durable is recorded by compare-and-set on the offset: a request
    that finds the offset moved (another replica appended meanwhile) stops with 409. With
    `all_or_nothing` (a PATCH that carries Upload-Checksum) nothing is recorded before `keep`.
    The last step is never recorded: the row says "complete" only by being gone, once the
    weights are published, so `HEAD` never answers the whole length for an upload whose
    replica died before publishing it (the client would take it as done). `finish` publishes,
    while this request still holds the bytes (the local file's lock).
    """

    def __init__(
        self, db: Database, storage: Storage, row: ResumableUploadRow, *, all_or_nothing: bool
    ) -> None:
        self._db, self._storage, self._row = db, storage, row
        self.offset = row.offset
        self._all_or_nothing = all_or_nothing
        self._complete: Progress | None = None
        try:
            self._appender = storage.append_partial(
                row.id, row.state, row.offset, row.length, partial(_reserve_part, db, row.id)
            )
        except PartialConflictError as exc:
            raise ConflictError(f"{exc}; {_RESUME_HINT}") from exc
        except PartialLostError as exc:  # kept by an older trainhub in one replica's spool
            discard_upload(db, storage, row.id)
            raise NotFoundError("upload", row.id) from exc

    def write(self, chunks: list[bytes]) -> None:
        """Append `chunks`, recording every part that became durable on the way."""
        for chunk in chunks:
            try:
                progress = self._appender.write(chunk)
            except PartialConflictError as exc:
                raise ConflictError(f"{exc}; {_RESUME_HINT}") from exc
            if progress is not None and not self._all_or_nothing:
                self._record(progress)

    def keep(self) -> int:
        """Make every byte received durable and record it; return the offset reached."""
        try:
            progress = self._appender.keep()
        except PartialConflictError as exc:
            raise ConflictError(f"{exc}; {_RESUME_HINT}") from exc
        self._record(progress)
        return progress.offset

    def drop(self) -> int:
        """Forget this request's bytes; return the offset, unchanged."""
        self._appender.drop()
        return self.offset

    def finish(self) -> None:
        """Publish the complete upload as the model's weights; the upload is gone either way.

        Storage reads the bytes back once to hash them (a hash cannot travel between replicas
        mid-upload), then they are verified against the declared sha256 and published.
        """
        assert self._complete is not None, "finish() after keep() reached the whole length"
        row = self._row
        try:
            writer = self._storage.finish_partial(row.id, self._complete.state, row.length)
            try:
                upload = read_upload_fields(row.fields)
                store_weights(self._db, self._storage, row.model_id, row.owner_id, upload, writer)
            except BaseException:
                writer.abort()
                raise
        finally:
            discard_upload(self._db, self._storage, row.id)

    def close(self) -> None:
        """Release what the request held."""
        self._appender.close()

    def _record(self, progress: Progress) -> None:
        if progress.offset == self._row.length:  # not recorded: see the class docstring
            self._complete = progress
            return
        with self._db.write() as session:
            moved = queries.advance_upload(
                session, self._row.id, self.offset, progress.offset, progress.state
            )
            gone = not moved and queries.find_upload(session, self._row.id) is None
        if gone:  # terminated meanwhile (by another replica)
            raise NotFoundError("upload", self._row.id)
        if not moved:
            raise ConflictError(
                f"another request appended to this upload meanwhile; {_RESUME_HINT}"
            )
        self.offset = progress.offset
        self._appender.recorded()


def discard_upload(db: Database, storage: Storage, upload_id: str) -> None:
    """Forget an upload and free the space its bytes take."""
    with db.write() as session:
        row = queries.find_upload(session, upload_id)
        if row is not None:
            session.delete(row)
    storage.discard_partial(upload_id)
