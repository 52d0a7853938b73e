"""The model page's panels for runs reported by ultralytics 8.4: console, environment, results.

What the Platform protocol sends that HUB never did (docs/protocol/platform.md §9.8): the console
(rendered with its colours, live), the environment of the newest run, the final validation and
the final curves and confusion matrix. The panels are partial templates (`_run_*.html`); their
data comes from services/runs.py and services/console.py, like the API's.
"""

from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from trainhub.server.deps import Db
from trainhub.server.services import console, runs
from trainhub.server.services.runs import RunView
from trainhub.server.web import charts, limits
from trainhub.server.web.auth import SignedIn
from trainhub.server.web.routing import create_router

router = create_router()
CONSOLE_PAGE_CHUNKS = 500
ENVIRONMENT = (
    ("ultralyticsVersion", "ultralytics"),
    ("pythonVersion", "Python"),
    ("hostname", "Host"),
    ("os", "OS"),
    ("environment", "Environment"),
    ("cpu", "CPU"),
    ("cpuCount", "CPU cores"),
    ("totalRamGb", "RAM (GB)"),
    ("gpuType", "GPU"),
    ("gpuCount", "GPUs"),
    ("gitRepository", "Git repository"),
    ("gitBranch", "Git branch"),
    ("gitCommit", "Git commit"),
    ("gitCommitMessage", "Commit message"),
    ("command", "Command"),
)
ChunkId = Annotated[int | None, Query(ge=0, le=2**63 - 1)]


def _environment(view: RunView | None) -> list[tuple[str, str]]:
    if view is None:
        return []
    env = view.run.environment
    return [(label, str(env[key])) for key, label in ENVIRONMENT if env.get(key) not in (None, "")]


def panels(views: list[RunView], *, is_owner: bool, status: str) -> dict[str, Any]:
    """Return what the run panels of a model page show (empty for a model without runs)."""
    latest = views[-1] if views else None
    final = next((v.run for v in reversed(views) if v.run.final_metrics), None)
    running = latest is not None and latest.run.ended_at is None and status == "training"
    return {
        "runs": [
            {
                "id": v.run.id,
                "state": v.run.state,
                "liveness": v.liveness if v.run.ended_at is None else v.run.state,
                "started": v.run.started_at,
                "ended": v.run.ended_at,
                "last_event": v.run.last_event_at,
                "host": v.run.environment.get("hostname") or "-",
                "resumed": v.run.train_args.get("resume", "False") not in ("False", ""),
            }
            for v in reversed(views)
        ],
        "environment": _environment(latest),
        "final": charts.grouped(list(final.final_metrics or {})) if final else {},
        "final_values": (final.final_metrics or {}) if final else {},
        "final_epoch": final.final_epoch if final else None,
        "has_results": any(v.run.plots for v in views),
        "can_stop": is_owner and running,
        "stop_requested": running and latest is not None and latest.run.cancel_requested_at,
    }


@router.get("/models/{model_id}/console.json", response_class=JSONResponse)
def console_chunks(
    request: Request, model_id: str, user: SignedIn, db: Db, after: ChunkId = None
) -> JSONResponse:
    """Return console chunks in order (the newest ones, or those after `after`) with colours.

    Counted as a page, not as chart data: a live page reads only the chunks it has not shown.
    """
    found = console.read_console(db, model_id, user.user_id, after=after, limit=CONSOLE_PAGE_CHUNKS)
    return JSONResponse(
        {
            "chunks": found.chunks,
            "progress": list(found.progress.values()),
            "more": len(found.chunks) == CONSOLE_PAGE_CHUNKS,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.get("/models/{model_id}/console.txt", response_class=PlainTextResponse)
def console_text(request: Request, model_id: str, user: SignedIn, db: Db) -> Response:
    """Return the whole console as plain text, colour codes stripped (a page, counted as one)."""
    text = console.read_console(db, model_id, user.user_id).text()
    return PlainTextResponse(text, headers={"Cache-Control": "no-store"})


@router.get("/models/{model_id}/results.json", response_class=JSONResponse)
def results(request: Request, model_id: str, user: SignedIn, db: Db) -> JSONResponse:
    """Return the newest run's final results: class names, curves, confusion matrix."""
    limits.check_chart_rate(request, user.user_id)
    views = runs.read_runs(db, model_id, user.user_id)
    done = next((v.run for v in reversed(views) if v.run.plots), None)
    if done is None:
        return JSONResponse({"plots": []}, headers={"Cache-Control": "no-store"})
    extra = done.results or {}
    return JSONResponse(
        {
            "runId": done.id,
            "classNames": done.class_names or [],
            "plots": done.plots,
            "bestEpoch": extra.get("bestEpoch"),
            "metrics": extra.get("metrics") if isinstance(extra.get("metrics"), dict) else {},
        },
        headers={"Cache-Control": "no-store"},
    )
