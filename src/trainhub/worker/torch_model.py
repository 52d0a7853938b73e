"""Predicting with the .pt through ultralytics (every task; imports torch in the worker only)."""

import threading
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

DECIMALS = 5


class TorchModel:
    """A model's final weights loaded by ultralytics, ready to predict on BGR images.

    Loading a .pt unpickles it, which runs code the checkpoint carries (docs/security.md §2.9:
    this happens in the worker, never in the server). One ultralytics predictor is not safe to
    share between threads, so predictions on one model take turns.
    """

    runtime = "torch"

    def __init__(self, path: Path) -> None:
        from ultralytics import YOLO  # type: ignore[import-not-found]  # not in the dev venv

        self.model = YOLO(str(path))
        self.task = str(self.model.task)
        self.names: dict[int, str] = {int(k): str(v) for k, v in self.model.names.items()}
        imgsz = self.model.overrides.get("imgsz", 640)
        self.imgsz = int(imgsz[0] if isinstance(imgsz, list | tuple) else imgsz)
        self._lock = threading.Lock()

    def predict(
        self, image: NDArray[np.uint8], conf: float, iou: float, imgsz: int | None
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Return ultralytics' summary of one BGR image, and the time of each step (ms)."""
        with self._lock:
            result = self.model.predict(
                image, conf=conf, iou=iou, imgsz=imgsz or self.imgsz, device="cpu", verbose=False
            )[0]
        if result.probs is not None:
            top = result.probs.top5
            confidences = result.probs.top5conf.tolist()
            results = [
                {"name": self.names[i], "class": int(i), "confidence": round(c, DECIMALS)}
                for i, c in zip(top, confidences, strict=True)
            ]
        else:
            results = result.summary(decimals=DECIMALS)
        return results, {k: float(v) for k, v in result.speed.items()}
