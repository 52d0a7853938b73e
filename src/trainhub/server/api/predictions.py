"""Hosted inference: `POST /v1/predict/{id}` (docs/protocol/hub-v1.md §5.15).

A multipart body with the image as the file part `image` (hub-sdk's name; `file` works too) and
the options as fields; the answer is the detections as JSON (protocol.exports.PredictionRecord).
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.exports import PredictionRecord
from trainhub.server.deps import CurrentUser, Db, SettingsDep, StorageDep
from trainhub.server.multipart import read_multipart
from trainhub.server.request_state import QueueDep
from trainhub.server.services import predictions as service

router = APIRouter(tags=["predictions"])


@router.post(
    paths.PREDICT,
    response_model=Envelope[PredictionRecord],
    responses={409: {}, 413: {}, 503: {}},
)
async def predict(
    model_id: str,
    request: Request,
    user: CurrentUser,
    db: Db,
    storage: StorageDep,
    settings: SettingsDep,
    queue: QueueDep,
) -> dict[str, Any]:
    """Run the model on one image (part `image`; fields `confidence`, `iou`, `size`)."""
    job = await run_in_threadpool(service.prepare_job, db, settings, model_id, user.user_id)
    form = await read_multipart(
        request, storage, service.is_image_part, settings.max_image_bytes + service.FIELDS_BYTES
    )
    try:
        image = await run_in_threadpool(service.read_image, form, settings)
    finally:
        form.abort()
    record = await service.predict_image(db, queue, settings, job, image, form.fields)
    count = len(record.get("results", []))
    return {"success": True, "message": f"{count} result(s)", "data": record}
