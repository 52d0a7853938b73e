"""The clean-up: what interrupted uploads and lost deletes leave behind, found and removed.

Four kinds of garbage, each removed only when it is older than a grace period, so that nothing
an upload in flight still needs is touched:

- resumable (tus) uploads nothing was appended to for `upload_expiry` (their row, and their
  file or S3 multipart upload and tail objects);
- what resumable uploads stored without a row (a server killed while it created or discarded
  one): files in the storage folder's `partial/`, S3 multipart uploads and objects under it;
- leftovers of interrupted uploads: temp files, and unfinished S3 multipart uploads;
- orphaned blobs: published, but referenced by no row (a server killed between publishing a
  blob and committing the row that names it, or a delete whose blob removal failed).

Blobs are listed before the references are read: a blob published after the listing is not
seen, and one published before it and committed since is younger than the grace period (an
upload publishes and commits within seconds). `trainhub gc` runs this once; the server runs it
every `gc_interval_s` (app.py). Both are safe beside running replicas and each other: every
removal is idempotent.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from trainhub.server.db import garbage as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import utcnow
from trainhub.server.storage import Storage, StorageError

logger = logging.getLogger(__name__)
DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_UPLOAD_EXPIRY = timedelta(hours=24)  # as services/uploads.py drops idle uploads


@dataclass(frozen=True)
class Garbage:
    """One thing to remove: what it is (for the operator), and how."""

    kind: str  # "expired upload", "stray upload", "leftover", "orphaned blob"
    what: str
    remove: Callable[[], None]


@dataclass
class Collection:
    """What a clean-up found, removed, and could not remove."""

    found: list[Garbage] = field(default_factory=list)
    removed: list[Garbage] = field(default_factory=list)
    failed: list[tuple[Garbage, str]] = field(default_factory=list)

    def summary(self) -> str:
        """Return one line: how many of each kind, and how many failed."""
        counts: dict[str, int] = {}
        for item in self.removed or self.found:
            counts[item.kind] = counts.get(item.kind, 0) + 1
        parts = [f"{count} {kind}{'s' if count > 1 else ''}" for kind, count in counts.items()]
        text = ", ".join(parts) or "nothing"
        return text + (f"; {len(self.failed)} could not be removed" if self.failed else "")


def _expired_uploads(db: Database, storage: Storage, before: datetime) -> list[Garbage]:
    with db.read() as session:
        rows = queries.idle_uploads(session, before)
    return [
        Garbage(
            "expired upload",
            f"resumable upload {row.id} ({row.offset} of {row.length} bytes, idle since "
            f"{row.updated_at:%Y-%m-%d %H:%M} UTC)",
            partial(_drop_upload, db, storage, row.id, before),
        )
        for row in rows
    ]


def _drop_upload(db: Database, storage: Storage, upload_id: str, before: datetime) -> None:
    with db.write() as session:
        dropped = queries.delete_idle_upload(session, upload_id, before)
    if dropped:  # still idle: nobody resumed it since it was listed
        storage.discard_partial(upload_id)


def _stray_uploads(db: Database, storage: Storage, before: datetime) -> list[Garbage]:
    stored = storage.partials()  # before the rows: an upload created meanwhile is too young
    with db.read() as session:
        known = queries.upload_ids(session)
    return [
        Garbage("stray upload", item.what, item.remove)
        for item in stored
        if item.upload_id not in known and item.started_at < before
    ]


def _leftovers(storage: Storage, before: datetime) -> list[Garbage]:
    return [
        Garbage("leftover", item.what, item.remove)
        for item in storage.leftovers()
        if item.started_at < before
    ]


def _orphaned_blobs(db: Database, storage: Storage, before: datetime) -> list[Garbage]:
    blobs = list(storage.iter_blobs())  # before the references: see the module docstring
    with db.read() as session:
        referenced = queries.referenced_keys(session)
    return [
        Garbage(
            "orphaned blob",
            f"blob {blob.key} ({blob.size_bytes} bytes)",
            partial(storage.delete, blob.key),
        )
        for blob in blobs
        if blob.key not in referenced and blob.modified_at < before
    ]


def find_garbage(
    db: Database,
    storage: Storage,
    *,
    grace: timedelta = DEFAULT_GRACE,
    upload_expiry: timedelta = DEFAULT_UPLOAD_EXPIRY,
) -> list[Garbage]:
    """Return everything the clean-up would remove now, expired uploads first."""
    now = utcnow()
    before = now - grace
    return [
        *_expired_uploads(db, storage, now - upload_expiry),
        *_stray_uploads(db, storage, before),
        *_leftovers(storage, before),
        *_orphaned_blobs(db, storage, before),
    ]


def collect_garbage(
    db: Database,
    storage: Storage,
    *,
    grace: timedelta = DEFAULT_GRACE,
    upload_expiry: timedelta = DEFAULT_UPLOAD_EXPIRY,
    dry_run: bool = False,
) -> Collection:
    """Find the garbage and (unless `dry_run`) remove it; a failed removal is reported, not raised.

    Listing failures (the database or the bucket unreachable) raise StorageError or
    SQLAlchemy's errors: nothing was removed then.
    """
    collection = Collection(find_garbage(db, storage, grace=grace, upload_expiry=upload_expiry))
    if dry_run:
        return collection
    for item in collection.found:
        try:
            item.remove()
        except (StorageError, OSError) as exc:
            logger.warning("could not remove %s: %s", item.what, exc)
            collection.failed.append((item, str(exc)))
        else:
            logger.debug("removed %s", item.what)
            collection.removed.append(item)
    return collection
