"""Datasets: CRUD and the archive upload (docs/protocol/hub-v1.md §5.16-§5.17, §9, §16.2).

An uploaded archive is inspected, never extracted (docs/security.md §2.7): hostile member names,
links, bombs and layouts ultralytics cannot train on are refused before anything is published.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.documents import DatasetDocument
from trainhub.protocol.envelope import Envelope, Page
from trainhub.protocol.records import DatasetRecord
from trainhub.server.api.resources import add_crud_routes
from trainhub.server.archives import is_archive_name
from trainhub.server.db.tables import DatasetRow
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.multipart import UploadedFile, read_multipart
from trainhub.server.records import dataset_record
from trainhub.server.request_state import LinksDep
from trainhub.server.services import datasets

router = APIRouter(tags=["datasets"])
add_crud_routes(
    router,
    DatasetRow,
    paths.DATASETS,
    paths.DATASET.replace("dataset_id", "object_id"),
    DatasetDocument,
    dataset_record,
    Envelope[DatasetRecord],
    Envelope[Page[DatasetRecord]],
)


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
    await run_in_threadpool(datasets.check_writable, db, dataset_id, user.user_id)
    form = await read_multipart(
        request, storage, lambda _name, _file: True, settings.max_upload_bytes
    )
    try:
        upload = _accept(form.files[0] if form.files else None, len(form.files))
        stored = await run_in_threadpool(
            datasets.store_archive, db, storage, user.user_id, upload, dataset_id=dataset_id
        )
    finally:
        form.abort()
    record = dataset_record(stored.dataset, links)
    record["warning"] = stored.warning
    message = stored.warning or f"dataset archive stored ({record['layout']} layout)"
    return {"success": True, "message": message, "data": record}
