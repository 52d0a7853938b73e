"""Compare models (`/compare`): overlay one metric of several models on one chart."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from trainhub.server.db.metrics import MAIN_METRIC
from trainhub.server.db.tables import utcnow
from trainhub.server.deps import Db
from trainhub.server.services import dashboard
from trainhub.server.web import charts, limits
from trainhub.server.web.auth import SignedIn
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router

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


def _unique(ids: list[str] | None) -> list[str]:
    return list(dict.fromkeys(ids or []))[:MAX_MODELS]


def chart_source(model_ids: list[str], metric: str) -> str:
    """Return the URL of the overlay's data: one `ids` parameter per model, then the metric."""
    return "/compare/chart.json?" + urlencode({"ids": model_ids, "metric": metric}, doseq=True)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request, user: SignedIn, db: Db, ids: Ids = None, metric: Metric = None
) -> Response:
    """Show the chosen models side by side and overlay one metric."""
    compared = dashboard.comparison(db, user.user_id, _unique(ids), utcnow())
    names = sorted({name for values in compared.latest.values() for name in values})
    chosen = pick_metric(names, metric)
    shown = [s.id for s in compared.summaries]
    return render(
        request,
        "compare.html",
        user,
        summaries=compared.summaries,
        names=names,
        metric=chosen,
        chart_src=chart_source(shown, chosen) if chosen else None,
        latest={model_id: values.get(chosen or "") for model_id, values in compared.latest.items()},
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
    columns, names = dashboard.overlay(db, user.user_id, _unique(ids), metric)
    data: dict[str, Any] = charts.payload(columns, points)
    data.pop("groups")
    data["names"] = names
    data["metric"] = metric
    return JSONResponse(data, headers={"Cache-Control": "no-store"})
