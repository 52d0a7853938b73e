"""Projects: CRUD and the cover image upload (docs/protocol/hub-v1.md §5.18-§5.19)."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.documents import ProjectDocument
from trainhub.protocol.envelope import Envelope, Page
from trainhub.protocol.records import ProjectRecord
from trainhub.server.api.resources import add_crud_routes
from trainhub.server.db.tables import ProjectRow
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.multipart import read_multipart
from trainhub.server.records import project_record
from trainhub.server.request_state import LinksDep
from trainhub.server.services import projects

router = APIRouter(tags=["projects"])
add_crud_routes(
    router,
    ProjectRow,
    paths.PROJECTS,
    paths.PROJECT.replace("project_id", "object_id"),
    ProjectDocument,
    project_record,
    Envelope[ProjectRecord],
    Envelope[Page[ProjectRecord]],
)


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
    await run_in_threadpool(projects.check_writable, db, project_id, user.user_id)
    form = await read_multipart(
        request, storage, lambda name, _file: name == "file", settings.max_image_bytes
    )
    try:
        if len(form.files) != 1:
            raise ValidationError("send exactly one non-empty image as the file part 'file'")
        row = await run_in_threadpool(
            projects.set_cover, db, storage, project_id, user.user_id, form.files[0]
        )
    finally:
        form.abort()
    return {"success": True, "message": "cover image stored", "data": project_record(row, links)}
