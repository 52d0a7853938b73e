"""Compare models (`/compare`): overlay one metric of several models on one chart."""

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session

from trainhub.server.db.tables import ModelRow, utcnow
from trainhub.server.deps import Db
from trainhub.server.web import charts, limits
from trainhub.server.web.auth import SignedIn
from trainhub.server.web.listing import visible_models
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router
from trainhub.server.web.summaries import MAIN_METRIC, summarize

router = create_router()
MAX_MODELS = 10
Ids = Annotated[list[str] | None, Query()]
Metric = Annotated[str | None, Query(max_length=200)]


def pick_metric(names: list[str], wanted: str | None) -> str | None:
    """Return the metric to show: the one asked for, else mAP50-95, else the first metric."""
    if wanted in names:
        return wanted
    if MAIN_METRIC in names:
        return MAIN_METRIC
    return names[0] if names else None


def overlay(session: Session, rows: list[ModelRow], metric: str) -> charts.Columns:
    """Return one column per model (keyed by model id) of `metric`, on the union of epochs."""
    per_model = {row.id: charts.read_columns(session, row.seq) for row in rows}
    epochs = sorted({e for columns in per_model.values() for e in columns.epochs})
    merged = charts.Columns(epochs=epochs)
    for model_id, columns in per_model.items():
        by_epoch = dict(zip(columns.epochs, columns.series.get(metric, []), strict=False))
        merged.series[model_id] = [by_epoch.get(e) for e in epochs]
    return merged


def _unique(ids: list[str] | None) -> list[str]:
    return list(dict.fromkeys(ids or []))[:MAX_MODELS]


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, user: SignedIn, db: Db, ids: Ids = None, metric: Metric = None
) -> Response:
    """Show the chosen models side by side and overlay one metric."""
    with db.read() as session:
        rows = visible_models(session, user.user_id, _unique(ids))
        summaries = summarize(session, rows, user.user_id, utcnow())
        latest = {row.id: charts.latest_values(session, row.seq)[1] for row in rows}
    names = sorted({name for values in latest.values() for name in values})
    chosen = pick_metric(names, metric)
    return render(
        request,
        "compare.html",
        user,
        summaries=summaries,
        names=names,
        metric=chosen,
        latest={model_id: values.get(chosen or "") for model_id, values in latest.items()},
        too_many=len(set(ids or [])) > MAX_MODELS,
    )


@router.get("/compare/chart.json", response_class=JSONResponse)
def compare_data(
    request: Request,
    user: SignedIn,
    db: Db,
    metric: Annotated[str, Query(max_length=200)],
    ids: Ids = None,
    points: Annotated[int, Query(ge=8, le=20_000)] = charts.DEFAULT_MAX_POINTS,
) -> JSONResponse:
    """Return `metric` of each chosen model as columns on a shared epoch axis."""
    limits.check_chart_rate(request, user.user_id)
    with db.read() as session:
        rows = visible_models(session, user.user_id, _unique(ids))
        columns = overlay(session, rows, metric)
    data: dict[str, Any] = charts.payload(columns, points)
    data.pop("groups")
    data["names"] = {row.id: row.name for row in rows}
    data["metric"] = metric
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
