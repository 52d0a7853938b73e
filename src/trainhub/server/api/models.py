"""Models: create, read, list, change and delete (docs/protocol/hub-v1.md §5.3-§5.7)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from trainhub.protocol import paths
from trainhub.protocol.documents import ModelDocument
from trainhub.protocol.envelope import CreatedRecord, DeletedRecord, Envelope, Page
from trainhub.protocol.ids import ID_PATTERN
from trainhub.protocol.records import ModelRecord
from trainhub.server.bodies import body_of, json_body_schema
from trainhub.server.deps import CurrentUser, Db, Heartbeats, OptionalUser, StorageDep, caller_id
from trainhub.server.records import model_record
from trainhub.server.request_state import LinksDep
from trainhub.server.services import models as service

router = APIRouter(tags=["models"])
Document = Annotated[ModelDocument, Depends(body_of(ModelDocument))]


@router.post(
    paths.MODELS,
    response_model=Envelope[CreatedRecord],
    openapi_extra=json_body_schema(ModelDocument),
)
def create_model(user: CurrentUser, db: Db, document: Document) -> dict[str, Any]:
    """Create a model; answer its id."""
    row = service.create_model(db, user.user_id, document.written())
    return {"success": True, "message": "model created", "data": {"id": row.id}}


@router.get(paths.MODEL, response_model=Envelope[ModelRecord])
def read_model(model_id: str, user: OptionalUser, db: Db, links: LinksDep) -> dict[str, Any]:
    """Return a model record (anonymous callers see public models only)."""
    context = service.read_model(db, model_id, caller_id(user))
    return {"success": True, "data": model_record(context, links)}


@router.get(paths.MODELS, response_model=Envelope[Page[ModelRecord]])
def list_models(
    user: OptionalUser,
    db: Db,
    links: LinksDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    last_doc_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    public: bool = False,
    project_id: Annotated[str | None, Query(alias="projectId", pattern=ID_PATTERN)] = None,
) -> dict[str, Any]:
    """List your models (or everyone's public ones with public=True), newest first."""
    page = service.list_models(
        db,
        caller_id(user),
        limit=limit,
        after=last_doc_id,
        public=public,
        project_id=project_id,
    )
    return {
        "success": True,
        "data": {
            "results": [model_record(context, links) for context in page.contexts],
            "total": page.total,
            "lastRecordId": page.last_record_id,
        },
    }


@router.patch(
    paths.MODEL, response_model=Envelope[ModelRecord], openapi_extra=json_body_schema(ModelDocument)
)
def update_model(
    model_id: str, user: CurrentUser, db: Db, links: LinksDep, document: Document
) -> dict[str, Any]:
    """Merge the body into the model's document (nested objects merge, null removes)."""
    context = service.update_model(db, model_id, user.user_id, document.written())
    return {"success": True, "message": "model updated", "data": model_record(context, links)}


@router.delete(paths.MODEL, response_model=Envelope[DeletedRecord])
def delete_model(
    model_id: str,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    heartbeats: Heartbeats,
    hard: bool = False,
) -> dict[str, Any]:
    """Delete a model: soft by default (hidden, data kept), hard=True removes everything."""
    service.delete_model(db, storage, heartbeats, model_id, user.user_id, hard=hard)
    return {"success": True, "message": "model deleted", "data": {"id": model_id, "hard": hard}}
