"""The model page (`/models/{id}`, the URL clients print), its chart data and its live updates."""

import time
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from trainhub.protocol.weights import WeightKind
from trainhub.server.db.models import ModelContext
from trainhub.server.db.tables import iso, utcnow
from trainhub.server.deps import Db
from trainhub.server.links import Links
from trainhub.server.liveness import is_online, state_of
from trainhub.server.records import model_record
from trainhub.server.services import dashboard, runs
from trainhub.server.settings import Settings
from trainhub.server.state import request_hub
from trainhub.server.web import charts, exportpanel, limits, live, previewpanel, runpanels, snippets
from trainhub.server.web.auth import PageLinks, SignedIn
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router

router = create_router()
CHARTS = charts.PayloadCache()  # this process's computed chart payloads (the key names the db)
NO_STORE = {"Cache-Control": "no-store"}
NOTICES = {
    "renamed": "The model was renamed.",
    "visibility": "The model's visibility was changed.",
    "reset": "The model was reset: metrics, checkpoints and weights were removed.",
    "stop-requested": "Stop requested: the trainer stops after its current epoch, uploads what "
    "it has and ends as cancelled.",
    "stopped": "The run was silent, so no trainer could hear the stop: the model is cancelled.",
    exportpanel.NOTICE: "Export requested: its state shows in the Export panel.",
}
Epoch = Annotated[int | None, Query(ge=0, le=10_000_000)]


def weight_rows(context: ModelContext, links: Links) -> list[dict[str, Any]]:
    """Return the checkpoint and final weights of a model, with signed download URLs."""
    labels = {
        WeightKind.FINAL: "final weights (best.pt)",
        WeightKind.CHECKPOINT: "last checkpoint (last.pt)",
    }
    return [
        {
            "label": labels[WeightKind(kind)],
            "epoch": weight.epoch,
            "size": weight.size_bytes,
            "sha256": weight.sha256,
            "map": weight.map,
            "created": weight.created_at,
            "url": links.weights(context.row.id, weight),
        }
        for kind, weight in sorted(context.weights.items())
    ]


def weight_versions(context: ModelContext) -> str:
    """Return a short text that changes whenever a checkpoint or the final weights change."""
    return ",".join(f"{kind}:{w.sha256[:12]}" for kind, w in sorted(context.weights.items()))


def agent_rows(context: ModelContext, now: datetime) -> list[dict[str, Any]]:
    """Return the training processes of a model (HUB heartbeats, Platform runs), newest first."""
    return [
        {
            "name": agent.name or agent.id,
            "state": agent.state,
            "interval": agent.interval_s,
            "protocol": agent.protocol,
            "first_seen": agent.first_seen,
            "last_seen": agent.last_seen,
            "online": is_online(agent, now),
            "liveness": state_of(agent, now) if agent.state == "running" else agent.state,
        }
        for agent in context.agents[:10]
    ]


@router.get("/models/{model_id}", response_class=HTMLResponse)
def model_page(
    request: Request,
    model_id: str,
    user: SignedIn,
    db: Db,
    links: PageLinks,
    notice: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """Show a model: live charts, liveness, weights, arguments, code to use it, actions."""
    now = utcnow()
    view = dashboard.model_view(db, model_id, user.user_id, now)
    context = view.context
    record = model_record(context, links)
    settings = request_hub(request).settings
    is_owner = context.row.owner_id == user.user_id
    has_weights = WeightKind.FINAL.value in context.weights
    run_views = runs.read_runs(db, model_id, user.user_id)
    return render(
        request,
        "model.html",
        user,
        model=record,
        summary=view.summary,
        is_owner=is_owner,
        platform=runpanels.panels(run_views, is_owner=is_owner, status=context.row.status),
        weights=weight_rows(context, links),
        weight_versions=weight_versions(context),
        agents=agent_rows(context, now),
        latest_epoch=view.latest_epoch,
        latest=charts.grouped(list(view.latest)),
        latest_values=view.latest,
        exports=exportpanel.panel_context(
            db, settings, links, model_id, user.user_id, is_owner=is_owner, has_weights=has_weights
        ),
        preview=previewpanel.panel_context(settings, model_id, has_weights=has_weights),
        notice=NOTICES.get(notice or ""),
        created=context.row.created_at,
        snippets={
            "yolo": snippets.yolo_train(record["url"]),
            "env": snippets.environment(links.public_url),
            "session": snippets.trainhub_session(record["url"]),
            "platform": snippets.platform_environment(links.public_url),
        },
    )


@router.get("/models/{model_id}/chart.json", response_class=JSONResponse)
def chart_data(
    request: Request,
    model_id: str,
    user: SignedIn,
    db: Db,
    points: Annotated[int, Query(ge=8, le=20_000)] = charts.DEFAULT_MAX_POINTS,
    first: Epoch = None,
    last: Epoch = None,
) -> Response:
    """Return the model's metrics as columns, downsampled to about `points` per series."""
    limits.check_chart_rate(request, user.user_id)
    seq, version = dashboard.chart_version(db, model_id, user.user_id)
    key = (db.url, seq, tuple(version.values()), points, first, last)
    data = CHARTS.get(key, read_since=time.monotonic() - dashboard.FULL_READ_EVERY_S)
    if data is None:  # the version read with the columns names them (an epoch may have come)
        version, held = dashboard.chart_columns(db, seq, first, last)
        data = charts.payload(held.columns, points)
        data["version"] = version  # what the `metrics` live event says when nothing changed
        key = (db.url, seq, tuple(version.values()), points, first, last)
        CHARTS.put(key, data, read_at=held.read_at)
    return Response(orjson.dumps(data), media_type="application/json", headers=NO_STORE)


def live_state(db: Db, settings: Settings, model_id: str, user_id: str) -> live.Snapshot:
    """Return what the model page shows live: summary, liveness, metrics, weights, exports."""
    now = utcnow()
    state = dashboard.model_state(db, model_id, user_id, now)
    exports = exportpanel.live_event(db, settings, model_id, user_id)
    if state.context is None or state.summary is None or exports is None:
        return {("gone", model_id): {"id": model_id}}
    event = state.summary.event()
    event["agents"] = [
        {**agent, "first_seen": iso(agent["first_seen"]), "last_seen": iso(agent["last_seen"])}
        for agent in agent_rows(state.context, now)
    ]
    return {
        live.DUE: state.summary.status_changes_at,
        ("exports", model_id): exports,
        ("model", model_id): event,
        ("metrics", model_id): state.metrics,
        ("weights", model_id): {"versions": weight_versions(state.context)},
        ("console", model_id): state.console,
        ("run", model_id): state.run,
    }


@router.get("/models/{model_id}/events", response_class=StreamingResponse)
def model_events(request: Request, model_id: str, user: SignedIn, db: Db) -> Response:
    """Stream the model's changes: status, epoch, heartbeats, agents, metrics, console, run."""
    dashboard.check_readable(db, model_id, user.user_id)

    def snapshot() -> live.Snapshot:
        return live_state(db, request_hub(request).settings, model_id, user.user_id)

    return live.event_stream(request, user, snapshot, lambda change: change.model_id == model_id)
