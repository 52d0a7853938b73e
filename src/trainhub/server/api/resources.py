"""CRUD routes shared by datasets and projects (create, read, list, change, delete).

Both follow the generic hub-sdk CRUD shape (docs/protocol/hub-v1.md §5, §5.7); `add_crud_routes`
registers the five routes for one of them so the two cannot drift apart.
"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from trainhub.protocol.envelope import CreatedRecord, Envelope
from trainhub.protocol.ids import ID_PATTERN
from trainhub.server.bodies import json_body_schema, json_object
from trainhub.server.db import owned, resources
from trainhub.server.db.tables import DatasetRow, ProjectRow
from trainhub.server.deps import CurrentUser, Db, OptionalUser, StorageDep, caller_id
from trainhub.server.links import Links
from trainhub.server.request_state import LinksDep

R = TypeVar("R", DatasetRow, ProjectRow)
Body = Annotated[dict[str, Any], Depends(json_object)]
DOC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "meta": {"type": "object", "properties": {"name": {"type": "string"}}},
        "public": {"type": "boolean"},
    },
}


def add_crud_routes(
    router: APIRouter,
    row_type: type[R],
    base: str,
    item: str,
    record: Callable[[Any, Links], dict[str, Any]],
    one_model: type[BaseModel],
    page_model: type[BaseModel],
) -> None:
    """Register create/read/list/update/delete of `row_type` on `router`."""
    kind = owned.KIND[row_type]
    schema = json_body_schema(
        {
            **DOC_SCHEMA,
            "properties": {
                **DOC_SCHEMA["properties"],
                **({"filename": {"type": "string"}} if kind == "dataset" else {}),
            },
        }
    )

    @router.post(
        base, response_model=Envelope[CreatedRecord], openapi_extra=schema, name=f"create_{kind}"
    )
    def create(user: CurrentUser, db: Db, body: Body) -> dict[str, Any]:
        with db.write() as session:
            row = resources.create(session, row_type, user.user_id, body)
        return {"success": True, "message": f"{kind} created", "data": {"id": row.id}}

    @router.get(item, response_model=one_model, name=f"read_{kind}")
    def read(object_id: str, user: OptionalUser, db: Db, links: LinksDep) -> dict[str, Any]:
        with db.read() as session:
            row = owned.load(session, row_type, object_id, caller_id(user))
        return {"success": True, "data": record(row, links)}

    @router.get(base, response_model=page_model, name=f"list_{kind}s")
    def listing(
        user: OptionalUser,
        db: Db,
        links: LinksDep,
        limit: Annotated[int, Query(ge=1, le=100)] = 10,
        last_doc_id: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
        public: bool = False,
    ) -> dict[str, Any]:
        with db.read() as session:
            page = owned.list_page(
                session,
                row_type,
                caller_id(user),
                limit=limit,
                last_doc_id=last_doc_id,
                public=public,
            )
        return {
            "success": True,
            "data": {
                "results": [record(r, links) for r in page.rows],
                "total": page.total,
                "lastRecordId": page.last_record_id,
            },
        }

    @router.patch(item, response_model=one_model, openapi_extra=schema, name=f"update_{kind}")
    def change(
        object_id: str, user: CurrentUser, db: Db, links: LinksDep, body: Body
    ) -> dict[str, Any]:
        with db.write() as session:
            row = owned.load(session, row_type, object_id, user.user_id, write=True)
            resources.change(row, body)
        return {"success": True, "message": f"{kind} updated", "data": record(row, links)}

    @router.delete(item, response_model=Envelope[dict[str, Any]], name=f"delete_{kind}")
    def remove(
        object_id: str, user: CurrentUser, db: Db, storage: StorageDep, hard: bool = False
    ) -> dict[str, Any]:
        with db.write() as session:
            row = owned.load(session, row_type, object_id, user.user_id, write=True)
            garbage = resources.remove(session, row, hard=hard)
        for key in garbage:
            storage.delete(key)
        return {
            "success": True,
            "message": f"{kind} deleted",
            "data": {"id": object_id, "hard": hard},
        }
