"""The models list (`/` and `/models`) and its live updates (`/models/events`)."""

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from trainhub.protocol.ids import ID_PATTERN
from trainhub.server.db.listing import STATUSES, ModelFilters
from trainhub.server.db.tables import utcnow
from trainhub.server.deps import Db
from trainhub.server.services import dashboard
from trainhub.server.state import request_hub
from trainhub.server.web import live, snippets
from trainhub.server.web.auth import SignedIn
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router

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
    page = dashboard.model_list(db, user.user_id, filters, after, utcnow())
    return render(
        request,
        "models.html",
        user,
        summaries=page.summaries,
        total=page.total,
        next_cursor=page.next_cursor,
        after=after,
        filters=filters,
        statuses=STATUSES,
        projects=page.projects,
        notice=NOTICES.get(notice or ""),
        first_run=snippets.first_run(request_hub(request).links.public_url),
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
        summaries, newest = dashboard.model_list_state(db, user.user_id, watched, filters, utcnow())
        state: live.Snapshot = {("row", s.id): s.event() for s in summaries}
        state[("list", "newest")] = {"newest": newest or ""}
        due = [s.status_changes_at for s in summaries if s.status_changes_at is not None]
        state[live.DUE] = min(due, default=None)
        return state

    def watches(change: live.Change) -> bool:
        # the newest model under the filters may be anyone's public model
        mine = change.user_id == user.user_id or change.model_id in watched
        return mine or filters.scope != "mine"

    return live.event_stream(request, user, snapshot, watches)
