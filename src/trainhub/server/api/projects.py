"""Projects: CRUD and the cover image upload (docs/protocol/hub-v1.md §5.18-§5.19)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope, Page
from trainhub.protocol.records import ProjectRecord
from trainhub.server.api.resources import add_crud_routes
from trainhub.server.db import owned
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ProjectRow
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.links import Links
from trainhub.server.multipart import UploadedFile, read_multipart
from trainhub.server.records import project_record
from trainhub.server.request_state import LinksDep
from trainhub.server.storage import Storage

router = APIRouter(tags=["projects"])
add_crud_routes(
    router,
    ProjectRow,
    paths.PROJECTS,
    paths.PROJECT.replace("project_id", "object_id"),
    project_record,
    Envelope[ProjectRecord],
    Envelope[Page[ProjectRecord]],
)

IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)


def image_type(head: bytes) -> str | None:
    """Return the media type of an image from its first bytes (PNG, JPEG, GIF, WebP)."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return next((media for magic, media in IMAGE_MAGIC if head.startswith(magic)), None)


def _check_project(db: Database, project_id: str, user_id: str) -> None:
    with db.read() as session:
        owned.load(session, ProjectRow, project_id, user_id, write=True)


def store_cover(
    db: Database, storage: Storage, project_id: str, user_id: str, upload: UploadedFile
) -> None:
    """Check that the upload is an image, then publish it as the project's cover."""
    with upload.writer.temp_path.open("rb") as file:
        media = image_type(file.read(16))
    if media is None:
        raise ValidationError("the cover must be a PNG, JPEG, GIF or WebP image")
    sha256 = upload.writer.hexdigest()
    key = f"projects/{project_id}/cover-{sha256}"
    upload.writer.publish(key)
    try:
        with db.write() as session:
            row = owned.load(session, ProjectRow, project_id, user_id, write=True)
            old = row.cover_key
            row.cover_key, row.cover_sha256, row.cover_type = key, sha256, media
            owned.touch(row)
    except BaseException:
        storage.delete(key)
        raise
    if old and old != key:
        storage.delete(old)


def _store(
    db: Database,
    storage: Storage,
    links: Links,
    project_id: str,
    user_id: str,
    upload: UploadedFile,
) -> dict[str, Any]:
    store_cover(db, storage, project_id, user_id, upload)
    with db.read() as session:
        return project_record(owned.load(session, ProjectRow, project_id, user_id), links)


@router.post(
    paths.PROJECT_UPLOAD,
    response_model=Envelope[ProjectRecord],
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
async def upload_cover(
    project_id: str,
    request: Request,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    links: LinksDep,
) -> dict[str, Any]:
    """Upload the project's cover image (part `file`); it replaces any earlier one."""
    await run_in_threadpool(_check_project, db, project_id, user.user_id)
    form = await read_multipart(
        request,
        storage,
        lambda name, _file: name == "file",
        settings.max_image_bytes,
    )
    try:
        if len(form.files) != 1 or form.files[0].writer.size == 0:
            raise ValidationError("send exactly one non-empty image as the file part 'file'")
        record = await run_in_threadpool(
            _store, db, storage, links, project_id, user.user_id, form.files[0]
        )
    finally:
        form.abort()
    return {"success": True, "message": "cover image stored", "data": record}
