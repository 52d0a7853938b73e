"""The web dashboard: server-rendered pages (Jinja2 + htmx), charts (uPlot), live updates (SSE).

`router` holds every page and data route of the dashboard; `mount_static` serves the vendored
static files at /static. Every route depends on `auth.page_user` (the server-side session its
cookie names, and the user's request rate) or is marked `trainhub.server.deps.public` (the
sign-in page and form). `PAGE_AUTH` names the page-auth dependency for the route inventory test,
beside `deps.optional_user` and `deps.require_user`.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.staticfiles import StaticFiles

from trainhub.server.web import (
    actions,
    auth,
    compare,
    datasets,
    exportpanel,
    keys,
    modelpage,
    models,
    previewpanel,
    projects,
    runpanels,
    signin,
)

STATIC_DIR = Path(__file__).parent / "static"
PAGE_AUTH: set[Callable[..., Any]] = {auth.page_user}

# models before modelpage: /models/events must win over /models/{model_id}
ROUTERS = tuple(
    module.router
    for module in (
        signin,
        models,
        modelpage,
        runpanels,
        exportpanel,
        previewpanel,
        actions,
        compare,
        datasets,
        projects,
        keys,
    )
)
router = APIRouter(include_in_schema=False)
for _router in ROUTERS:
    router.include_router(_router)


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's CSS, scripts and vendored libraries at /static (no auth needed)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
