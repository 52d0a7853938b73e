"""The models list (`/` and `/models`) and its live updates (`/models/events`)."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from trainhub.protocol.ids import ID_PATTERN
from trainhub.server.db.tables import utcnow
from trainhub.server.deps import Db
from trainhub.server.web import live, snippets
from trainhub.server.web.auth import SignedIn
from trainhub.server.web.listing import (
    STATUSES,
    ModelFilters,
    list_models,
    user_projects,
    visible_models,
)
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router
from trainhub.server.web.summaries import summarize

router = create_router()
Filter = Annotated[str | None, Query(max_length=40)]
Cursor = Annotated[str | None, Query(pattern=ID_PATTERN)]
NOTICES = {"model-deleted": "The model was deleted."}
MAX_WATCHED = 100


@router.get("/", response_class=HTMLResponse)
@router.get("/models", response_class=HTMLResponse)
def models_page(
    request: Request,
    user: SignedIn,
    db: Db,
    project: Filter = None,
    status: Filter = None,
    scope: Filter = None,
    after: Cursor = None,
    notice: Filter = None,
) -> Response:
    """List the user's models (or public ones), filtered, newest first, one page at a time."""
    filters = ModelFilters.parse(project, status, scope)
    now = utcnow()
    with db.read() as session:
        page = list_models(session, user.user_id, filters, after, now)
        summaries = summarize(session, page.rows, user.user_id, now)
        projects = user_projects(session, user.user_id)
    return render(
        request,
        "models.html",
        user,
        summaries=summaries,
        total=page.total,
        next_cursor=page.last_record_id,
        after=after,
        filters=filters,
        statuses=STATUSES,
        projects=projects,
        notice=NOTICES.get(notice or ""),
        first_run=snippets.first_run(request.app.state.links.public_url),
    )


@router.get("/models/events", response_class=StreamingResponse)
def models_events(
    request: Request,
    user: SignedIn,
    db: Db,
    ids: Annotated[str, Query(max_length=MAX_WATCHED * 21)] = "",
    project: Filter = None,
    status: Filter = None,
    scope: Filter = None,
) -> Response:
    """Stream changes of the listed models, and the id of the newest model under the filters."""
    filters = ModelFilters.parse(project, status, scope)
    watched = [i for i in ids.split(",") if i][:MAX_WATCHED]

    def snapshot() -> live.Snapshot:
        now = utcnow()
        with db.read() as session:
            rows = visible_models(session, user.user_id, watched)
            newest = list_models(session, user.user_id, filters, None, now, limit=1).rows
            state: live.Snapshot = {
                ("row", s.id): s.event() for s in summarize(session, rows, user.user_id, now)
            }
        state[("list", "newest")] = {"newest": newest[0].id if newest else ""}
        return state

    return live.event_stream(request, user, snapshot)
