"""The model page's Export panel: request an export, the model's export history, live states.

`POST /models/{id}/exports` queues an export of the model's final weights with the same operation
as the API's `POST /v1/models/{id}/export` (services/exports.py): a plain form is redirected back
to the page, a script gets the export record as JSON. `GET /models/{id}/exports` renders the
panel's history alone; the page's script fetches it when the live `exports` event says that a job
changed (download links are signed for each request, so the events carry states, not links).
"""

from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from trainhub.protocol.exports import EXPORT_FORMATS, ExportStatus, find_format
from trainhub.server.db.engine import Database
from trainhub.server.deps import Db, SettingsDep
from trainhub.server.errors import NotFoundError
from trainhub.server.links import Links
from trainhub.server.records import export_record
from trainhub.server.request_state import QueueDep
from trainhub.server.services import exports
from trainhub.server.settings import Settings
from trainhub.server.web.auth import PageLinks, SignedIn
from trainhub.server.web.csrf import require_csrf
from trainhub.server.web.render import render
from trainhub.server.web.routing import accepts_html, create_router, see_other

router = create_router()
NOTICE = "export-queued"  # the model page's notice after a plain form post
DEFAULT_FORMAT = "onnx"
FORMATS = [(f.name, f.title) for f in EXPORT_FORMATS.values()]


def history_version(history: exports.ExportHistory) -> str:
    """Return a short text that changes whenever an export's state or the workers' liveness do."""
    states = ",".join(f"{row.id}:{row.status}:{row.attempts}" for row in history.rows)
    return f"{states}|{'workers' if history.workers_alive else 'no-workers'}"


def history_rows(history: exports.ExportHistory, links: Links) -> list[dict[str, Any]]:
    """Return the export records of the history, with what the table shows beside them."""
    rows = []
    for row in history.rows:
        found = find_format(row.format)
        record = export_record(row, history.model_id, links, history.workers_alive)
        rows.append(
            {
                **record,
                "title": found.title if found else row.format,
                "created": row.created_at,
                "started": row.started_at,
                "active": ExportStatus(row.status).is_active,
            }
        )
    return rows


def history_context(history: exports.ExportHistory, links: Links) -> dict[str, Any]:
    """Return what `_export_history.html` renders."""
    return {
        "model_id": history.model_id,
        "rows": history_rows(history, links),
        "workers_alive": history.workers_alive,
        "version": history_version(history),
    }


def panel_context(
    db: Database,
    settings: Settings,
    links: Links,
    model_id: str,
    user_id: str,
    *,
    is_owner: bool,
    has_weights: bool,
) -> dict[str, Any]:
    """Return what `_export_panel.html` renders: the history, the formats, who may export."""
    history = exports.export_history(db, settings, model_id, user_id)
    return {
        **history_context(history, links),
        "can_request": is_owner and has_weights,
        "is_owner": is_owner,
        "formats": FORMATS,
        "default_format": DEFAULT_FORMAT,
    }


def live_event(
    db: Database, settings: Settings, model_id: str, user_id: str
) -> dict[str, Any] | None:
    """Return the `exports` event of the model page's live stream; None once the model is gone."""
    try:
        history = exports.export_history(db, settings, model_id, user_id)
    except NotFoundError:
        return None
    return {
        "version": history_version(history),
        "workersAlive": history.workers_alive,
        "exports": [
            {"id": row.id, "format": row.format, "status": row.status} for row in history.rows
        ],
    }


@router.get("/models/{model_id}/exports", response_class=HTMLResponse)
def export_history(
    request: Request,
    model_id: str,
    user: SignedIn,
    db: Db,
    settings: SettingsDep,
    links: PageLinks,
) -> Response:
    """Render a model's export history (the part of the Export panel that changes)."""
    history = exports.export_history(db, settings, model_id, user.user_id)
    return render(request, "_export_history.html", user, exports=history_context(history, links))


@router.post("/models/{model_id}/exports", dependencies=[Depends(require_csrf)])
def request_export(
    request: Request,
    model_id: str,
    user: SignedIn,
    db: Db,
    queue: QueueDep,
    settings: SettingsDep,
    links: PageLinks,
    format_name: Annotated[str, Form(alias="format", max_length=40)] = DEFAULT_FORMAT,
) -> Response:
    """Queue an export of the model's final weights (owner only); answer the job."""
    view = exports.request_export(db, queue, settings, model_id, user.user_id, format_name)
    if accepts_html(request):
        return see_other(f"/models/{model_id}?notice={NOTICE}#exports")
    record = export_record(view.row, view.model_id, links, view.workers_alive)
    return JSONResponse({"success": True, "message": record["message"], "data": record})
