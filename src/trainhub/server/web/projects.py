"""Projects in the dashboard: list, create, a project's page with its models, the cover image."""

from typing import Annotated

from fastapi import Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import ID_PATTERN
from trainhub.server.api.projects import store_cover
from trainhub.server.db import owned, resources
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow, ProjectRow, utcnow
from trainhub.server.deps import Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.multipart import read_multipart
from trainhub.server.records import project_record
from trainhub.server.web import csrf
from trainhub.server.web.auth import PageLinks, SignedIn
from trainhub.server.web.listing import ModelFilters, list_models
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router, see_other
from trainhub.server.web.summaries import summarize

router = create_router()
PAGE_SIZE = 50
Cursor = Annotated[str | None, Query(pattern=ID_PATTERN)]
NOTICES = {"created": "The project was created.", "cover": "The cover image was stored."}


def model_counts(session: Session, project_ids: list[str]) -> dict[str, int]:
    """Return how many live models each project holds."""
    if not project_ids:
        return {}
    rows = session.execute(
        select(ModelRow.project_id, func.count())
        .where(ModelRow.project_id.in_(project_ids), ModelRow.deleted_at.is_(None))
        .group_by(ModelRow.project_id)
    )
    return {project_id: count for project_id, count in rows if project_id}


@router.get("/projects", response_class=HTMLResponse)
def projects_page(
    request: Request, user: SignedIn, db: Db, links: PageLinks, after: Cursor = None
) -> Response:
    """List the user's projects and offer a form to create one."""
    with db.read() as session:
        page = owned.list_page(
            session, ProjectRow, user.user_id, limit=PAGE_SIZE, last_doc_id=after, public=False
        )
        projects = [project_record(row, links) for row in page.rows]
        counts = model_counts(session, [row.id for row in page.rows])
    return render(
        request,
        "projects.html",
        user,
        projects=projects,
        counts=counts,
        total=page.total,
        next_cursor=page.last_record_id,
        after=after,
    )


@router.post("/projects", dependencies=[Depends(csrf.require_csrf)])
def create_project(
    user: SignedIn,
    db: Db,
    name: Annotated[str, Form(max_length=200)],
    public: Annotated[str | None, Form(max_length=10)] = None,
) -> Response:
    """Create a project."""
    if not name.strip():
        raise ValidationError("a project needs a name; type one")
    with db.write() as session:
        row = resources.create(
            session,
            ProjectRow,
            user.user_id,
            {"meta": {"name": name.strip()}, "public": public == "yes"},
        )
    return see_other(f"/projects/{row.id}?notice=created")


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(
    request: Request,
    project_id: str,
    user: SignedIn,
    db: Db,
    links: PageLinks,
    after: Cursor = None,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Show a project: its cover image and its models."""
    now = utcnow()
    with db.read() as session:
        row = owned.load(session, ProjectRow, project_id, user.user_id)
        filters = ModelFilters(project_id=row.id)
        page = list_models(session, user.user_id, filters, after, now)
        summaries = summarize(session, page.rows, user.user_id, now)
        project = project_record(row, links)
    return render(
        request,
        "project.html",
        user,
        project=project,
        is_owner=row.owner_id == user.user_id,
        summaries=summaries,
        total=page.total,
        next_cursor=page.last_record_id,
        after=after,
        filters=filters,
        notice=NOTICES.get(notice or ""),
    )


def _check_owner(db: Database, project_id: str, user_id: str) -> None:
    with db.read() as session:
        owned.load(session, ProjectRow, project_id, user_id, write=True)


@router.post("/projects/{project_id}/cover", response_model=None)
async def upload_cover(
    request: Request,
    project_id: str,
    user: SignedIn,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
) -> Response:
    """Store a project's cover image (multipart part `file`)."""
    await run_in_threadpool(_check_owner, db, project_id, user.user_id)
    form = await read_multipart(
        request,
        storage,
        lambda field, _filename: field == "file",
        settings.max_image_bytes,
    )
    try:
        csrf.check_token(
            request, user, request.headers.get(csrf.HEADER) or form.fields.get(csrf.FIELD)
        )
        if len(form.files) != 1 or form.files[0].writer.size == 0:
            raise ValidationError("choose one PNG, JPEG, GIF or WebP image")
        await run_in_threadpool(store_cover, db, storage, project_id, user.user_id, form.files[0])
    finally:
        form.abort()
    return see_other(f"/projects/{project_id}?notice=cover")
