"""Exports: request, poll, history, clear (docs/protocol/hub-v1.md §5.12, §5.13, §5.22).

`POST /v1/models/{id}/export` and `POST /get-export` are HUB's; `GET /v1/models/{id}/exports`
(a model's export history) and `GET /v1/exports/{id}` (one job's state, to poll) are trainhub's.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope, IdRecord
from trainhub.protocol.exports import ExportCreate, ExportPoll, ExportRecord, ExportStatus
from trainhub.server.bodies import body_of, json_body_schema
from trainhub.server.deps import CurrentUser, Db, OptionalUser, SettingsDep, StorageDep, caller_id
from trainhub.server.records import export_record
from trainhub.server.request_state import LinksDep, QueueDep
from trainhub.server.services import exports as service

router = APIRouter(tags=["exports"])


def _answer(view: service.ExportView, links: Any) -> dict[str, Any]:
    record = export_record(view.row, view.model_id, links, view.workers_alive)
    return {
        "success": view.row.status != ExportStatus.FAILED,
        "message": record["message"],
        "data": record,
    }


@router.post(
    paths.MODEL_EXPORT,
    response_model=Envelope[ExportRecord],
    openapi_extra=json_body_schema(ExportCreate),
)
def request_export(
    model_id: str,
    user: CurrentUser,
    db: Db,
    queue: QueueDep,
    settings: SettingsDep,
    links: LinksDep,
    body: Annotated[ExportCreate, Depends(body_of(ExportCreate))],
) -> dict[str, Any]:
    """Queue an export of the model's final weights; answer the job (200, as the clients need)."""
    view = service.request_export(db, queue, settings, model_id, user.user_id, body.format)
    return _answer(view, links)


@router.post(
    paths.GET_EXPORT,
    response_model=Envelope[ExportRecord],
    openapi_extra=json_body_schema(ExportPoll),
)
def get_export(
    user: CurrentUser,
    db: Db,
    settings: SettingsDep,
    links: LinksDep,
    body: Annotated[ExportPoll, Depends(body_of(ExportPoll))],
) -> dict[str, Any]:
    """Report an export: "Export ready!" with its URL, in progress, or failed and why."""
    view = service.poll_export(db, settings, body.modelId, user.user_id, body.format)
    return _answer(view, links)


@router.get(paths.MODEL_EXPORTS, response_model=Envelope[list[ExportRecord]])
def list_exports(
    model_id: str, user: OptionalUser, db: Db, settings: SettingsDep, links: LinksDep
) -> dict[str, Any]:
    """Return the model's exports, newest first."""
    views = service.list_exports(db, settings, model_id, caller_id(user))
    return {
        "success": True,
        "data": [export_record(v.row, v.model_id, links, v.workers_alive) for v in views],
    }


@router.get(paths.EXPORT, response_model=Envelope[ExportRecord])
def read_export(
    export_id: str, user: OptionalUser, db: Db, settings: SettingsDep, links: LinksDep
) -> dict[str, Any]:
    """Return one export job: queued, running, done (with its URL) or failed (with why)."""
    view = service.read_export(db, settings, export_id, caller_id(user))
    return _answer(view, links)


@router.post(paths.CLEAR_EXPORTS, response_model=Envelope[IdRecord])
def clear_exports(model_id: str, user: CurrentUser, db: Db, storage: StorageDep) -> dict[str, Any]:
    """Delete every export of the model and its files."""
    count = service.clear_exports(db, storage, model_id, user.user_id)
    return {"success": True, "message": f"{count} export(s) cleared", "data": {"id": model_id}}
