"""Projects in the dashboard: list, create, a project's page with its models, the cover image."""

from typing import Annotated

from fastapi import Depends, Form, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from trainhub.protocol.ids import ID_PATTERN
from trainhub.server.db.listing import ModelFilters
from trainhub.server.db.tables import ProjectRow, utcnow
from trainhub.server.deps import Db, SettingsDep, StorageDep
from trainhub.server.errors import ValidationError
from trainhub.server.multipart import read_multipart
from trainhub.server.records import project_record
from trainhub.server.services import dashboard, projects, resources
from trainhub.server.web import csrf
from trainhub.server.web.auth import PageLinks, SignedIn
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router, see_other

router = create_router()
PAGE_SIZE = 50
Cursor = Annotated[str | None, Query(pattern=ID_PATTERN)]
NOTICES = {"created": "The project was created.", "cover": "The cover image was stored."}


@router.get("/projects", response_class=HTMLResponse)
def projects_page(
    request: Request, user: SignedIn, db: Db, links: PageLinks, after: Cursor = None
) -> Response:
    """List the user's projects and offer a form to create one."""
    page = resources.list_page(
        db, ProjectRow, user.user_id, limit=PAGE_SIZE, after=after, public=False
    )
    projects = [project_record(row, links) for row in page.rows]
    counts = dashboard.model_counts(db, [row.id for row in page.rows])
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
    row = resources.create(
        db, ProjectRow, user.user_id, {"meta": {"name": name.strip()}, "public": public == "yes"}
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
    view = dashboard.project_view(db, project_id, user.user_id, after, utcnow())
    row = view.project
    project = project_record(row, links)
    return render(
        request,
        "project.html",
        user,
        project=project,
        is_owner=row.owner_id == user.user_id,
        summaries=view.summaries,
        total=view.total,
        next_cursor=view.next_cursor,
        after=after,
        filters=ModelFilters(project_id=row.id),
        notice=NOTICES.get(notice or ""),
    )


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
    await run_in_threadpool(projects.check_writable, db, project_id, user.user_id)
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
        if len(form.files) != 1:
            raise ValidationError("choose one PNG, JPEG, GIF or WebP image")
        await run_in_threadpool(
            projects.set_cover, db, storage, project_id, user.user_id, form.files[0]
        )
    finally:
        form.abort()
    return see_other(f"/projects/{project_id}?notice=cover")
