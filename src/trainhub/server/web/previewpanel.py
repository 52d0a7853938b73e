"""The model page's Preview panel: run the model on one image sent from the browser.

`POST /models/{id}/preview` is the page's own same-origin endpoint, like `/datasets/upload`: it
takes the session cookie and the CSRF token (header or form field) instead of an API key, then
does what the API's `POST /v1/predict/{id}` does (services/predictions.py), for any model the user
may read. A script gets the prediction record as JSON and draws it; a plain form post (no
JavaScript) gets a page with the detections as a table.
"""

from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from trainhub.server.deps import Db, SettingsDep, StorageDep
from trainhub.server.images import IMAGE_TYPES
from trainhub.server.multipart import read_multipart
from trainhub.server.request_state import QueueDep
from trainhub.server.services import predictions
from trainhub.server.settings import Settings
from trainhub.server.web import csrf
from trainhub.server.web.auth import SignedIn
from trainhub.server.web.render import render
from trainhub.server.web.routing import accepts_html, create_router

router = create_router()
ACCEPT = "image/png,image/jpeg,image/gif,image/webp,image/bmp"


def panel_context(settings: Settings, model_id: str, *, has_weights: bool) -> dict[str, Any]:
    """Return what `_preview_panel.html` renders: whether it can run, and the image limits."""
    return {
        "model_id": model_id,
        "enabled": has_weights,
        "accept": ACCEPT,
        "types": IMAGE_TYPES,
        "max_bytes": settings.max_image_bytes,
        "max_megapixels": settings.max_predict_pixels / 1e6,
    }


def result_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the detections of a prediction record as the no-script page lists them."""
    rows = []
    for result in record.get("results", []):
        box = result.get("box") or {}
        corners = ", ".join(f"{key} {value:.1f}" for key, value in sorted(box.items()))
        rows.append({**result, "corners": corners or "-"})
    return rows


@router.post("/models/{model_id}/preview", response_model=None)
async def preview(
    request: Request,
    model_id: str,
    user: SignedIn,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> Response:
    """Run a readable model on the image sent as the file part `image`; answer its detections."""
    header = request.headers.get(csrf.HEADER)
    if header:  # a script's token is checked before its body is read
        csrf.check_token(request, user, header)
    limit = settings.max_image_bytes + predictions.FIELDS_BYTES
    form = await read_multipart(request, storage, predictions.is_image_part, limit)
    try:
        csrf.check_token(request, user, header or form.fields.get(csrf.FIELD))
        job = await run_in_threadpool(predictions.prepare_job, db, settings, model_id, user.user_id)
        image = await run_in_threadpool(predictions.read_image, form, settings)
    finally:
        form.abort()
    record = await predictions.predict_image(db, queue, settings, job, image, form.fields)
    count = len(record.get("results", []))
    if accepts_html(request):
        return await run_in_threadpool(
            render, request, "preview.html", user, record=record, rows=result_rows(record)
        )
    return JSONResponse({"success": True, "message": f"{count} result(s)", "data": record})
