"""Datasets: CRUD and the archive upload (docs/protocol/hub-v1.md §5.16-§5.17, §9, §16.2).

An uploaded archive is inspected, never extracted (docs/security.md §2.7): hostile member names,
links, bombs and layouts ultralytics cannot train on are refused before anything is published.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope, Page
from trainhub.protocol.records import DatasetRecord
from trainhub.server.api.resources import add_crud_routes
from trainhub.server.archives import ArchiveError, inspect_archive, is_archive_name
from trainhub.server.db import owned
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import DatasetRow
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.links import Links
from trainhub.server.multipart import UploadedFile, read_multipart
from trainhub.server.records import dataset_record
from trainhub.server.request_state import LinksDep
from trainhub.server.storage import Storage

router = APIRouter(tags=["datasets"])
add_crud_routes(
    router,
    DatasetRow,
    paths.DATASETS,
    paths.DATASET.replace("dataset_id", "object_id"),
    dataset_record,
    Envelope[DatasetRecord],
    Envelope[Page[DatasetRecord]],
)


def _check_dataset(db: Database, dataset_id: str, user_id: str) -> None:
    with db.read() as session:
        owned.load(session, DatasetRow, dataset_id, user_id, write=True)


def _accept(upload: UploadedFile | None, count: int) -> UploadedFile:
    if upload is None or count != 1:
        raise ValidationError(
            "send exactly one file part, named after the archive's file name "
            "(for example coco8.zip)"
        )
    if not is_archive_name(upload.filename):
        raise ValidationError(
            f"{upload.filename[:80]!r} is not a dataset archive: upload a .zip, "
            ".tar, .tar.gz or .tgz file with a plain file name"
        )
    if upload.field not in (upload.filename, "file"):
        raise ValidationError("the file part must be named after the file (hub-sdk does this)")
    return upload


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


def _store(
    db: Database,
    storage: Storage,
    links: Links,
    dataset_id: str,
    user_id: str,
    upload: UploadedFile,
) -> dict[str, Any]:
    try:
        report = inspect_archive(upload.writer.temp_path, upload.filename)
    except ArchiveError as exc:
        raise ValidationError(str(exc)) from exc
    sha256 = upload.writer.hexdigest()
    key = f"datasets/{dataset_id}/{sha256}"
    upload.writer.publish(key)
    try:
        with db.write() as session:
            row = owned.load(session, DatasetRow, dataset_id, user_id, write=True)
            old, old_root, old_sha256 = row.blob_key, row.archive_root, row.sha256
            row.filename, row.blob_key, row.sha256 = upload.filename, key, sha256
            row.size_bytes, row.layout = upload.writer.size, report.layout
            row.archive_root = report.root
            owned.touch(row)
            record = dataset_record(row, links)
            record["warning"] = stale_folder_warning(report.root, old_root, old_sha256, sha256)
    except BaseException:
        storage.delete(key)
        raise
    if old and old != key:
        storage.delete(old)
    return record


@router.post(
    paths.DATASET_UPLOAD,
    response_model=Envelope[DatasetRecord],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload_dataset(
    dataset_id: str,
    request: Request,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    links: LinksDep,
) -> dict[str, Any]:
    """Upload the dataset's archive (zip, tar or tar.gz); it replaces any earlier one."""
    await run_in_threadpool(_check_dataset, db, dataset_id, user.user_id)
    form = await read_multipart(
        request,
        storage,
        lambda _name, _file: True,
        settings.max_upload_bytes,
    )
    try:
        upload = _accept(form.files[0] if form.files else None, len(form.files))
        record = await run_in_threadpool(
            _store, db, storage, links, dataset_id, user.user_id, upload
        )
    finally:
        form.abort()
    return {
        "success": True,
        "message": record["warning"] or f"dataset archive stored ({record['layout']} layout)",
        "data": record,
    }
