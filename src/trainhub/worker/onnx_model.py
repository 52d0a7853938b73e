"""Predicting with an ONNX export through onnxruntime: numpy and OpenCV only, no torch.

The export's own metadata (written by ultralytics) gives the task, class names, input size and
keypoint shape. Pre- and post-processing follow ultralytics' predictors step for step (letterbox,
NMS, rescaling; resize and centre crop for classifiers), so the answer matches what ultralytics
answers for the same file. Detection, pose and classification run here; segmentation and
oriented boxes go through the .pt instead (predictions.py).
"""

import ast
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image

from trainhub.worker.boxes import select, unpad

TASKS = ("detect", "pose", "classify")
PAD_VALUE = 114
DECIMALS = 5


class UnsupportedModelError(Exception):
    """The ONNX file is not one this module can run (another task, a dynamic input)."""


def _literal(text: str | None, default: Any) -> Any:
    return default if text is None else ast.literal_eval(text)  # literals only, never code


def letterbox(image: NDArray[np.uint8], shape: tuple[int, int]) -> NDArray[np.uint8]:
    """Resize keeping the aspect ratio, then pad to `shape` (height, width) with grey, centred."""
    height, width = image.shape[:2]
    gain = min(shape[0] / height, shape[1] / width)
    new_w, new_h = round(width * gain), round(height * gain)
    pad_w, pad_h = (shape[1] - new_w) / 2, (shape[0] - new_h) / 2
    if (width, height) != (new_w, new_h):
        image = np.asarray(  # (no copy: names cv2's answer as the uint8 array it is)
            cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
        )
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    padded = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3
    )
    return np.asarray(padded, dtype=np.uint8)


def center_crop(image: NDArray[np.uint8], size: int) -> NDArray[np.uint8]:
    """Resize the short side to `size` (bilinear, as torchvision on PIL), crop the centre."""
    rgb = Image.fromarray(image[:, :, ::-1])
    width, height = rgb.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    rgb = rgb.resize((new_w, new_h), Image.Resampling.BILINEAR)
    top, left = round((new_h - size) / 2.0), round((new_w - size) / 2.0)
    rgb = rgb.crop((left, top, left + size, top + size))
    return np.asarray(rgb)[:, :, ::-1]


class OnnxModel:
    """An exported model loaded in onnxruntime, ready to predict on BGR images."""

    runtime = "onnx"

    def __init__(self, path: Path) -> None:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        self.task = str(meta.get("task", "detect"))
        if self.task not in TASKS:
            raise UnsupportedModelError(f"ONNX predictions for {self.task} models go through .pt")
        self.names: dict[int, str] = {
            int(k): str(v) for k, v in _literal(meta.get("names"), {}).items()
        }
        self.kpt_shape: list[int] | None = _literal(meta.get("kpt_shape"), None)
        shape = self.session.get_inputs()[0].shape
        if not all(isinstance(d, int) for d in shape[2:]):
            raise UnsupportedModelError("the ONNX export has a dynamic input size")
        self.shape = (int(shape[2]), int(shape[3]))  # height, width
        self.imgsz = self.shape[0]
        self.input_name = self.session.get_inputs()[0].name

    def predict(
        self, image: NDArray[np.uint8], conf: float, iou: float
    ) -> tuple[list[dict[str, Any]], dict[str, float]]:
        """Return ultralytics-style results for one BGR image, and the time of each step (ms)."""
        started = time.perf_counter()
        if self.task == "classify":
            ready = center_crop(image, self.imgsz)
        else:
            ready = letterbox(image, self.shape)
        chw = np.ascontiguousarray(ready[:, :, ::-1].transpose(2, 0, 1))[None]
        tensor = chw.astype(np.float32) / 255.0
        prepared = time.perf_counter()
        output = self.session.run(None, {self.input_name: tensor})[0]
        inferred = time.perf_counter()
        if self.task == "classify":
            results = self._classes(output[0])
        else:
            results = self._boxes(output[0], image.shape[:2], conf, iou)
        done = time.perf_counter()
        speed = {
            "preprocess": (prepared - started) * 1000,
            "inference": (inferred - prepared) * 1000,
            "postprocess": (done - inferred) * 1000,
        }
        return results, speed

    def _classes(self, probabilities: NDArray[np.float32]) -> list[dict[str, Any]]:
        top = np.argsort(-probabilities, kind="stable")[:5]
        return [
            {
                "name": self.names.get(int(i), str(int(i))),
                "class": int(i),
                "confidence": round(float(probabilities[i]), DECIMALS),
            }
            for i in top
        ]

    def _boxes(
        self, output: NDArray[np.float32], image_shape: tuple[int, int], conf: float, iou: float
    ) -> list[dict[str, Any]]:
        num_classes = len(self.names) if self.task == "detect" else 1
        rows = select(output, num_classes, conf, iou)
        boxes = unpad(rows[:, :4], self.shape, image_shape)
        results = []
        for row, box in zip(rows, boxes, strict=True):
            cls = int(row[5])
            result: dict[str, Any] = {
                "name": self.names.get(cls, str(cls)),
                "class": cls,
                "confidence": round(float(row[4]), DECIMALS),
                "box": {
                    k: round(float(v), DECIMALS)
                    for k, v in zip(("x1", "y1", "x2", "y2"), box, strict=True)
                },
            }
            if self.task == "pose" and self.kpt_shape:
                result["keypoints"] = self._keypoints(row[6:], image_shape)
            results.append(result)
        return results

    def _keypoints(
        self, values: NDArray[np.float32], image_shape: tuple[int, int]
    ) -> dict[str, list[float]]:
        assert self.kpt_shape is not None
        points = values.reshape(self.kpt_shape[0], self.kpt_shape[1])
        flat = points[:, :2].reshape(1, -1)
        xy = unpad(flat, self.shape, image_shape, whole_pixels=False).reshape(-1, 2)
        visible = points[:, 2] if self.kpt_shape[1] == 3 else np.ones(len(points))
        return {
            "x": [round(float(v), DECIMALS) for v in xy[:, 0]],
            "y": [round(float(v), DECIMALS) for v in xy[:, 1]],
            "visible": [round(float(v), DECIMALS) for v in visible],
        }
