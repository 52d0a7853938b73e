"""Running a prediction job: decode the image, pick the runtime, run the model, answer JSON.

The job comes from services/predictions.py. The answer is `{"ok": true, "record": {...}}`, or
`{"ok": false, "status", "message"}` for a request the worker refuses; nothing a client sends
raises out of here, so no input can stop the worker. A job finished after its caller gave up
answers nothing (huey stores no result for None).
"""

import base64
import binascii
import logging
import time
from typing import Any

from trainhub.worker.images import ImageRefusedError, decode_image
from trainhub.worker.models import ModelCache
from trainhub.worker.onnx_model import UnsupportedModelError

logger = logging.getLogger(__name__)


class PredictionRefusedError(Exception):
    """A prediction the worker cannot run as asked: the status and what to do."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _refused(status: int, message: str) -> dict[str, Any]:
    return {"ok": False, "status": status, "message": message}


class Predictor:
    """Runs prediction jobs with the models of a shared cache."""

    def __init__(self, cache: ModelCache) -> None:
        self.cache = cache
        self._no_onnx: set[str] = set()  # exports this worker cannot run (segment, obb, dynamic)

    def run(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """Answer one prediction job (see the module docstring)."""
        started = time.perf_counter()
        deadline = float(job.get("deadline") or 0)
        if time.time() > deadline:
            logger.info("prediction for model %s skipped: its caller gave up", job.get("modelId"))
            return None
        try:
            record = self._predict(job)
        except (ImageRefusedError, PredictionRefusedError) as exc:
            return _refused(exc.status, exc.message)
        except Exception as exc:  # a model that will not load or run: the worker carries on
            logger.exception("prediction for model %s failed", job.get("modelId"))
            return _refused(
                500, f"the worker could not run the model ({type(exc).__name__}: {str(exc)[:300]})"
            )
        took_ms = (time.perf_counter() - started) * 1000
        logger.info(
            "prediction for model %s (%s, %d results) in %.0f ms",
            record["modelId"],
            record["runtime"],
            len(record["results"]),
            took_ms,
        )
        if time.time() > deadline:
            return None
        return {"ok": True, "record": record}

    def _predict(self, job: dict[str, Any]) -> dict[str, Any]:
        try:
            data = base64.b64decode(job["image"], validate=True)
        except (binascii.Error, KeyError, TypeError) as exc:
            raise PredictionRefusedError(422, "the job carries no readable image") from exc
        image = decode_image(data, int(job.get("maxPixels") or 0))
        conf, iou = float(job["conf"]), float(job["iou"])
        imgsz = int(job["imgsz"]) if job.get("imgsz") else None
        model = self._choose(job, imgsz)
        if model.runtime == "onnx":
            results, speed = model.predict(image, conf, iou)
            used = model.imgsz
        else:
            results, speed = model.predict(image, conf, iou, imgsz)
            used = imgsz or model.imgsz
        return {
            "modelId": job["modelId"],
            "task": model.task,
            "runtime": model.runtime,
            "imgsz": used,
            "conf": conf,
            "iou": iou,
            "width": int(image.shape[1]),
            "height": int(image.shape[0]),
            "results": results,
            "speed_ms": {k: round(v, 3) for k, v in speed.items()},
        }

    def _choose(self, job: dict[str, Any], imgsz: int | None) -> Any:
        """Return the ONNX model when it can answer as asked, else the .pt model."""
        wanted = job.get("runtime", "auto")
        onnx_blob = job["models"].get("onnx")
        if wanted in ("auto", "onnx") and onnx_blob and onnx_blob["sha256"] not in self._no_onnx:
            try:
                model = self.cache.get("onnx", onnx_blob)
            except UnsupportedModelError as exc:
                self._no_onnx.add(onnx_blob["sha256"])
                if wanted == "onnx":
                    raise PredictionRefusedError(422, f"{exc}; leave runtime out") from exc
            else:
                if imgsz is None or imgsz == model.imgsz:
                    return model
                if wanted == "onnx":
                    raise PredictionRefusedError(
                        422,
                        f"the ONNX export takes {model.imgsz}-pixel images; leave size out, "
                        "or use runtime=torch",
                    )
        elif wanted == "onnx":
            raise PredictionRefusedError(
                409, "the model has no ONNX export of its current weights; export it first"
            )
        return self.cache.get("torch", job["models"]["torch"])
