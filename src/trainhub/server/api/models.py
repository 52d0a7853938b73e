"""Models: create, read, list, change and delete (docs/protocol/hub-v1.md §5.3-§5.7)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from trainhub.protocol import paths
from trainhub.protocol.envelope import CreatedRecord, Envelope, Page
from trainhub.protocol.ids import ID_PATTERN
from trainhub.protocol.records import ModelRecord
from trainhub.server.bodies import json_body_schema, json_object
from trainhub.server.db import models as queries
from trainhub.server.db import owned
from trainhub.server.db.tables import ModelRow
from trainhub.server.deps import CurrentUser, Db, OptionalUser, StorageDep, caller_id
from trainhub.server.records import load_model_context, model_record
from trainhub.server.request_state import LinksDep

router = APIRouter(tags=["models"])
Body = Annotated[dict[str, Any], Depends(json_object)]

CREATE_SCHEMA = {
    "type": "object",
    "properties": {
        "meta": {"type": "object", "properties": {"name": {"type": "string"}}},
        "config": {"type": "object"},
        "dataset": {"type": "object"},
        "lineage": {"type": "object"},
        "datasetId": {"type": ["string", "null"]},
        "projectId": {"type": ["string", "null"]},
        "public": {"type": "boolean"},
    },
}


def delete_blobs(storage: StorageDep, keys: list[str]) -> None:
    """Remove blobs that no row refers to any more (after the transaction committed)."""
    for key in keys:
        storage.delete(key)


@router.post(
    paths.MODELS,
    response_model=Envelope[CreatedRecord],
    openapi_extra=json_body_schema(CREATE_SCHEMA),
)
def create_model(user: CurrentUser, db: Db, body: Body) -> dict[str, Any]:
    """Create a model; answer its id."""
    with db.write() as session:
        row = queries.create_model(session, user.user_id, body)
    return {"success": True, "message": "model created", "data": {"id": row.id}}


@router.get(paths.MODEL, response_model=Envelope[ModelRecord])
def read_model(model_id: str, user: OptionalUser, db: Db, links: LinksDep) -> dict[str, Any]:
    """Return a model record (anonymous callers see public models only)."""
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, caller_id(user))
        record = model_record(load_model_context(session, row, caller_id(user)), links)
    return {"success": True, "data": record}


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
    extra = ModelRow.project_id == project_id if project_id else None
    with db.read() as session:
        page = owned.list_page(
            session,
            ModelRow,
            caller_id(user),
            limit=limit,
            last_doc_id=last_doc_id,
            public=public,
            extra=extra,
        )
        results = [
            model_record(load_model_context(session, r, caller_id(user)), links) for r in page.rows
        ]
    return {
        "success": True,
        "data": {"results": results, "total": page.total, "lastRecordId": page.last_record_id},
    }


@router.patch(
    paths.MODEL, response_model=Envelope[ModelRecord], openapi_extra=json_body_schema(CREATE_SCHEMA)
)
def update_model(
    model_id: str, user: CurrentUser, db: Db, links: LinksDep, body: Body
) -> dict[str, Any]:
    """Merge the body into the model's document (nested objects merge, null removes)."""
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user.user_id, write=True)
        queries.update_model(session, row, body, user.user_id)
        record = model_record(load_model_context(session, row, caller_id(user)), links)
    return {"success": True, "message": "model updated", "data": record}


@router.delete(paths.MODEL, response_model=Envelope[dict[str, Any]])
def delete_model(
    model_id: str, user: CurrentUser, db: Db, storage: StorageDep, hard: bool = False
) -> dict[str, Any]:
    """Delete a model: soft by default (hidden, data kept), hard=True removes everything."""
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user.user_id, write=True)
        garbage = queries.delete_model(session, row, hard=hard)
    delete_blobs(storage, garbage)
    return {"success": True, "message": "model deleted", "data": {"id": model_id, "hard": hard}}
