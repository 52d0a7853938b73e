"""CRUD routes shared by datasets and projects (create, read, list, change, delete).

Both follow the generic hub-sdk CRUD shape (docs/protocol/hub-v1.md §5, §5.7); `add_crud_routes`
registers the five routes for one of them so the two cannot drift apart.
"""

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from trainhub.protocol.documents import Document
from trainhub.protocol.envelope import CreatedRecord, DeletedRecord, Envelope
from trainhub.protocol.ids import ID_PATTERN
from trainhub.server.bodies import body_of, json_body_schema
from trainhub.server.db.owned import KIND
from trainhub.server.db.tables import DatasetRow, ProjectRow
from trainhub.server.deps import CurrentUser, Db, OptionalUser, StorageDep, caller_id
from trainhub.server.links import Links
from trainhub.server.request_state import LinksDep
from trainhub.server.services import resources

R = TypeVar("R", DatasetRow, ProjectRow)


def add_crud_routes(
    router: APIRouter,
    row_type: type[R],
    base: str,
    item: str,
    document_model: type[Document],
    record: Callable[[Any, Links], dict[str, Any]],
    one_model: type[BaseModel],
    page_model: type[BaseModel],
) -> None:
    """Register create/read/list/update/delete of `row_type` on `router`."""
    kind = KIND[row_type]
    schema = json_body_schema(document_model)
    Body = Annotated[Document, Depends(body_of(document_model))]

    @router.post(
        base, response_model=Envelope[CreatedRecord], openapi_extra=schema, name=f"create_{kind}"
    )
    def create(user: CurrentUser, db: Db, body: Body) -> dict[str, Any]:
        row = resources.create(db, row_type, user.user_id, body.written())
        return {"success": True, "message": f"{kind} created", "data": {"id": row.id}}

    @router.get(item, response_model=one_model, name=f"read_{kind}")
    def read(object_id: str, user: OptionalUser, db: Db, links: LinksDep) -> dict[str, Any]:
        row = resources.read(db, row_type, object_id, caller_id(user))
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
        page = resources.list_page(
            db, row_type, caller_id(user), limit=limit, after=last_doc_id, public=public
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
        row = resources.update(db, row_type, object_id, user.user_id, body.written())
        return {"success": True, "message": f"{kind} updated", "data": record(row, links)}

    @router.delete(item, response_model=Envelope[DeletedRecord], name=f"delete_{kind}")
    def remove(
        object_id: str, user: CurrentUser, db: Db, storage: StorageDep, hard: bool = False
    ) -> dict[str, Any]:
        resources.delete(db, storage, row_type, object_id, user.user_id, hard=hard)
        return {
            "success": True,
            "message": f"{kind} deleted",
            "data": {"id": object_id, "hard": hard},
        }
