"""Dataset archives: each uploaded version is inspected, published and recorded the same way.

The API uploads into an existing dataset; the dashboard creates the dataset and uploads in one
step. Both go through `store_archive`, so what a version records (its file, hash, layout and
top-level folder) and the warnings it earns never depend on the way it came in.
"""

from dataclasses import dataclass
from typing import Any

from trainhub.server.archives import ArchiveError, ArchiveReport, inspect_archive
from trainhub.server.db import dataset_exports, owned, resources
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import DatasetRow
from trainhub.server.errors import ValidationError
from trainhub.server.multipart import UploadedFile
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.storage import Storage


@dataclass(frozen=True)
class StoredArchive:
    """A dataset after a new version of its archive was stored, and what to tell the uploader."""

    dataset: DatasetRow
    warning: str | None


def stale_folder_warning(
    root: str, old_root: str | None, old_sha256: str | None, sha256: str
) -> str | None:
    """Warn when a new version keeps the old version's top-level folder name.

    ultralytics extracts a zip with one top-level folder into `<datasets_dir>/<folder>` and skips
    extraction when that folder exists, so a trainer that has the old version would keep using
    it (see docs/compatibility.md).
    """
    if not root or root != old_root or old_sha256 in (None, sha256):
        return None
    return (
        f"this archive's top-level folder {root!r} has the same name as the previous "
        "version's: trainers that already extracted it will keep the old files; name the "
        "folder after the version (for example shapes-v2/) to avoid that"
    )


def check_writable(db: Database, dataset_id: str, user_id: str) -> None:
    """Raise (404, 403) unless `user_id` may upload to the dataset: before any byte."""
    with db.read() as session:
        owned.load(session, DatasetRow, dataset_id, user_id, write=True)


def _inspect(upload: UploadedFile) -> ArchiveReport:
    try:
        return inspect_archive(upload.writer.temp_path, upload.filename)
    except ArchiveError as exc:
        raise ValidationError(str(exc)) from exc


def store_archive(
    db: Database,
    storage: Storage,
    user_id: str,
    upload: UploadedFile,
    *,
    dataset_id: str | None = None,
    document: dict[str, Any] | None = None,
) -> StoredArchive:
    """Inspect an uploaded archive, then publish it as a version of a dataset.

    The version goes to the dataset `dataset_id`, or, with `document`, to a new dataset made
    from it in the same transaction. The previous version's file becomes garbage.
    """
    report = _inspect(upload)
    sha256 = upload.writer.hexdigest()
    published: str | None = None
    try:
        with db.write() as session:
            if dataset_id is None:
                row = resources.create(session, DatasetRow, user_id, document or {})
            else:
                row = owned.load(session, DatasetRow, dataset_id, user_id, write=True)
            old_key, old_root, old_sha256 = row.blob_key, row.archive_root, row.sha256
            key = f"datasets/{row.id}/{sha256}"
            upload.writer.publish(key)
            published = key
            row.filename, row.blob_key, row.sha256 = upload.filename, key, sha256
            row.size_bytes, row.layout, row.archive_root = (
                upload.writer.size,
                report.layout,
                report.root,
            )
            owned.touch(row)
            warning = stale_folder_warning(report.root, old_root, old_sha256, sha256)
            stale_exports = dataset_exports.keep_only(
                session, row, sha256
            )  # NDJSON of old versions
    except BaseException:
        if published is not None:
            storage.delete(published)
        raise
    delete_garbage(storage, ([old_key] if old_key and old_key != key else []) + stale_exports)
    return StoredArchive(row, warning)
