"""Hosted inference: check the request, queue it for a worker, wait a bounded time for the answer.

See docs/protocol/hub-v1.md §5.15. The image is checked here from its header (type, size, pixel
count) before it is queued; the worker decodes it and runs the model: the ONNX export of the
model's current weights through onnxruntime when there is one, else the .pt through ultralytics.
A request waits at most `predict_timeout_s`, then answers 503 with Retry-After, and a worker that
picks the job up later skips it.
"""

import asyncio
import base64
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from anyio import to_thread

from trainhub.protocol.exports import ExportStatus
from trainhub.protocol.weights import WeightKind
from trainhub.server.db import exports as export_queries
from trainhub.server.db import owned, workers
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow, WeightRow
from trainhub.server.errors import (
    ConflictError,
    HubError,
    PayloadTooLargeError,
    ServiceUnavailableError,
    ValidationError,
)
from trainhub.server.images import IMAGE_TYPES, ImageError, ImageInfo, read_image_info
from trainhub.server.jobs.queue import JobQueue, QueueUnavailableError
from trainhub.server.multipart import MultipartForm
from trainhub.server.settings import Settings

logger = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")
MIN_IMGSZ, MAX_IMGSZ, STRIDE = 32, 2048, 32
FIRST_POLL_S, MAX_POLL_S = 0.002, 0.025
NO_WORKER_RETRY_S = 30
IMAGE_PARTS = ("image", "file")  # hub-sdk's name first
FIELDS_BYTES = 64 * 1024  # room for a predict form's text fields beside the image
# hub-sdk's documented names first, ultralytics' predict() arguments second
OPTION_NAMES = {"conf": ("confidence", "conf"), "iou": ("iou",), "imgsz": ("size", "imgsz")}


@dataclass(frozen=True)
class PredictOptions:
    """What the caller asked for besides the image."""

    conf: float = 0.25
    iou: float = 0.7
    imgsz: int | None = None  # None: the size the model was trained (or exported) at
    runtime: str = "auto"


def _number(fields: Mapping[str, str], option: str) -> float | None:
    names = OPTION_NAMES[option]
    raw = next((fields[n] for n in names if fields.get(n, "").strip()), None)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(f"{names[0]} must be a number, got {raw[:40]!r}") from None
    if not math.isfinite(value):
        raise ValidationError(f"{names[0]} must be a finite number")
    return value


def read_options(fields: Mapping[str, str]) -> PredictOptions:
    """Return the options of a predict form (`confidence`/`conf`, `iou`, `size`/`imgsz`)."""
    defaults = PredictOptions()
    conf = _number(fields, "conf")
    iou = _number(fields, "iou")
    imgsz = _number(fields, "imgsz")
    for name, value in (("confidence", conf), ("iou", iou)):
        if value is not None and not 0 < value <= 1:
            raise ValidationError(f"{name} must be above 0 and at most 1, got {value}")
    size: int | None = None
    if imgsz is not None:
        if not MIN_IMGSZ <= imgsz <= MAX_IMGSZ:
            raise ValidationError(f"size must be {MIN_IMGSZ} to {MAX_IMGSZ} pixels, got {imgsz}")
        size = math.ceil(imgsz / STRIDE) * STRIDE  # as ultralytics rounds it
    runtime = fields.get("runtime", "auto").strip().lower() or "auto"
    if runtime not in RUNTIMES:
        raise ValidationError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    return PredictOptions(
        conf if conf is not None else defaults.conf,
        iou if iou is not None else defaults.iou,
        size,
        runtime,
    )


def check_image(data: bytes, settings: Settings) -> ImageInfo:
    """Return what the image's header says; 422 for a non-image or an empty one, 413 if huge."""
    if not data:
        raise ValidationError(f"the image is empty; send a {IMAGE_TYPES} file as the part 'image'")
    try:
        info = read_image_info(data)
    except ImageError as exc:
        raise ValidationError(str(exc)) from exc
    if info.width == 0 or info.height == 0:
        raise ValidationError(f"the image is {info.width}x{info.height} pixels: it has no pixels")
    if info.pixels > settings.max_predict_pixels:
        raise PayloadTooLargeError(
            f"the image is {info.width}x{info.height} pixels ({info.pixels / 1e6:.1f} "
            f"megapixels); this server predicts on at most {settings.max_predict_pixels / 1e6:g} "
            "megapixels (max_predict_pixels): resize it first"
        )
    return info


def is_image_part(name: str, _filename: str) -> bool:
    """Tell whether a multipart part is the image of a predict form (for `read_multipart`)."""
    return name in IMAGE_PARTS


def read_image(form: MultipartForm, settings: Settings) -> bytes:
    """Return the one image of a predict form; 422 for none, several, or one over the limit."""
    if len(form.files) != 1:
        raise ValidationError("send exactly one image as the file part 'image'")
    upload = form.files[0]
    if upload.writer.size > settings.max_image_bytes:
        raise ValidationError(
            f"the image has {upload.writer.size} bytes; the limit is "
            f"{settings.max_image_bytes} (max_image_bytes)"
        )
    return upload.writer.temp_path.read_bytes()


def _blob(weights: Any) -> dict[str, str]:
    return {"key": weights.blob_key, "sha256": weights.sha256}


def prepare_job(
    db: Database, settings: Settings, model_id: str, reader_id: str | None
) -> dict[str, Any]:
    """Return the model files a worker may predict with; 409 when the model has no weights."""
    with db.read() as session:
        model = owned.load(session, ModelRow, model_id, reader_id)
        weights = session.get(WeightRow, (model.seq, WeightKind.FINAL.value))
        if weights is None:
            raise ConflictError(
                f"model {model_id!r} has no final weights yet; predictions need a trained model"
            )
        onnx = export_queries.done_export(session, model.seq, "onnx", weights.sha256)
    onnx_blob = (
        {"key": onnx.blob_key, "sha256": onnx.sha256}
        if onnx is not None and onnx.status == ExportStatus.DONE and onnx.blob_key
        else None
    )
    return {"modelId": model_id, "models": {"onnx": onnx_blob, "torch": _blob(weights)}}


def require_worker(db: Database, settings: Settings) -> None:
    """Raise 503 with Retry-After when no worker reported within the job lease."""
    with db.read() as session:
        alive = workers.live_workers(session, settings.job_lease_s)
    if not alive:
        raise ServiceUnavailableError(
            "no worker is running to predict with; the operator starts one with `trainhub "
            "worker` (docs/server.md, Workers)",
            headers={"Retry-After": str(NO_WORKER_RETRY_S)},
        )


async def predict(
    queue: JobQueue,
    settings: Settings,
    job: dict[str, Any],
    image: bytes,
    options: PredictOptions,
) -> dict[str, Any]:
    """Queue the prediction and return the worker's record; 503 when none answers in time."""
    timeout_s = settings.predict_timeout_s
    job = {
        **job,
        "image": base64.b64encode(image).decode(),
        "conf": options.conf,
        "iou": options.iou,
        "imgsz": options.imgsz,
        "runtime": options.runtime,
        "deadline": time.time() + timeout_s,
        "maxPixels": settings.max_predict_pixels,
    }
    try:
        task_id = await to_thread.run_sync(queue.enqueue_prediction, job, timeout_s)
        result = await _wait(queue, task_id, time.monotonic() + timeout_s)
    except QueueUnavailableError as exc:
        logger.error("prediction for model %s failed: %s", job["modelId"], exc)
        raise ServiceUnavailableError(
            "the job queue is unavailable; try again later (the server log has why)",
            headers={"Retry-After": str(NO_WORKER_RETRY_S)},
        ) from exc
    if result is None:
        raise ServiceUnavailableError(
            f"no worker answered within {timeout_s:g} s (predict_timeout_s): the workers are "
            "busy or stopped; try again later",
            headers={"Retry-After": str(max(1, math.ceil(timeout_s / 2)))},
        )
    return _answer(result)


async def predict_image(
    db: Database,
    queue: JobQueue,
    settings: Settings,
    job: dict[str, Any],
    image: bytes,
    fields: Mapping[str, str],
) -> dict[str, Any]:
    """Check the form's options and the image, then predict; 503 when no worker is alive."""
    options = read_options(fields)
    check_image(image, settings)
    await to_thread.run_sync(require_worker, db, settings)
    return await predict(queue, settings, job, image, options)


async def _wait(queue: JobQueue, task_id: str, deadline: float) -> Any:
    delay = FIRST_POLL_S
    while True:
        if await to_thread.run_sync(queue.has_result, task_id):
            return await to_thread.run_sync(queue.take_result, task_id)
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, MAX_POLL_S)


class WorkerAnswerError(HubError):
    """The worker refused the job (a bad image, a model it cannot load): its status and reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _answer(result: Any) -> dict[str, Any]:
    if isinstance(result, dict) and result.get("ok") is True and "record" in result:
        return dict(result["record"])
    if isinstance(result, dict) and result.get("ok") is False:
        status = result.get("status")
        message = str(result.get("message") or "the worker could not run the prediction")
        raise WorkerAnswerError(status if isinstance(status, int) else 500, message)
    logger.error("a worker answered a prediction with %r", str(result)[:500])
    raise WorkerAnswerError(500, "the worker failed to run the prediction; its log has why")
