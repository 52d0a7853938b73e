"""Exports and hosted inference on the wire (docs/protocol/hub-v1.md §5.12, §5.13, §5.15).

The export formats are ultralytics' own list (`ultralytics.engine.exporter.export_formats()`),
written out here because neither the server nor the client imports ultralytics. Each format
names the suffix ultralytics gives its output and whether that output is a folder (served as a
zip). The records are what the API answers; the field names follow the model record's
camelCase (docs/protocol/hub-v1.md §6).
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class ExportFormat:
    """One export format: its `format=` argument, display name and what the exporter writes."""

    name: str
    title: str
    suffix: str  # appended to the weights' stem: "best.onnx", "best_openvino_model/"
    is_folder: bool

    def file_name(self, stem: str) -> str:
        """Return the name of the file served for an export of `stem` (a folder is zipped)."""
        return f"{stem}{self.suffix}.zip" if self.is_folder else f"{stem}{self.suffix}"


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("torchscript", "TorchScript", ".torchscript", False),
        ExportFormat("onnx", "ONNX", ".onnx", False),
        ExportFormat("openvino", "OpenVINO", "_openvino_model", True),
        ExportFormat("engine", "TensorRT", ".engine", False),
        ExportFormat("coreml", "CoreML", ".mlpackage", True),
        ExportFormat("saved_model", "TensorFlow SavedModel", "_saved_model", True),
        ExportFormat("pb", "TensorFlow GraphDef", ".pb", False),
        ExportFormat("tflite", "TensorFlow Lite", ".tflite", False),
        ExportFormat("edgetpu", "TensorFlow Edge TPU", "_edgetpu.tflite", False),
        ExportFormat("tfjs", "TensorFlow.js", "_web_model", True),
        ExportFormat("paddle", "PaddlePaddle", "_paddle_model", True),
        ExportFormat("mnn", "MNN", ".mnn", False),
        ExportFormat("ncnn", "NCNN", "_ncnn_model", True),
        ExportFormat("imx", "IMX", "_imx_model", True),
        ExportFormat("rknn", "RKNN", "_rknn_model", True),
        ExportFormat("executorch", "ExecuTorch", "_executorch_model", True),
        ExportFormat("axelera", "Axelera", "_axelera_model", True),
    )
}
# ultralytics 8.3's `hub.export_model` also offers the two formats HUB's phone apps used
FORMAT_ALIASES = {"ultralytics_tflite": "tflite", "ultralytics_coreml": "coreml"}


def find_format(name: str) -> ExportFormat | None:
    """Return the export format `name` (or one of its aliases) names, None for anything else."""
    return EXPORT_FORMATS.get(FORMAT_ALIASES.get(name, name))


def format_names() -> str:
    """Return the known format names as one line, for messages."""
    return ", ".join([*EXPORT_FORMATS, *FORMAT_ALIASES])


class ExportStatus(StrEnum):
    """Where an export job is: waiting, being exported, done, or failed (with a reason)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def is_active(self) -> bool:
        """Tell whether the job is still waiting or running."""
        return self in (ExportStatus.QUEUED, ExportStatus.RUNNING)


class ExportCreate(BaseModel):
    """`POST /v1/models/{id}/export`: the format to export the model's final weights to."""

    format: str = Field(min_length=1, max_length=40)


class ExportPoll(BaseModel):
    """`POST /get-export`: which export to report (ultralytics also sends its key here)."""

    model_config = ConfigDict(extra="ignore")

    modelId: str = Field(min_length=1, max_length=100)
    format: str = Field(min_length=1, max_length=40)
    apiKey: str | None = None


class ExportRecord(BaseModel):
    """One export job of a model: its state, and once done the signed URL of the file."""

    id: str
    modelId: str
    format: str
    status: ExportStatus
    message: str
    error: str | None = None
    url: str | None = None
    fileName: str | None = None
    sha256: str | None = None
    size_bytes: int | None = None
    weightsSha256: str
    attempts: int
    createdAt: str
    startedAt: str | None = None
    finishedAt: str | None = None
    durationSeconds: float | None = None


class PredictionRecord(BaseModel):
    """What `POST /v1/predict/{id}` answers: one image's results as ultralytics summarises them.

    `results` has one entry per detection, `{"name", "class", "confidence", "box": {"x1", "y1",
    "x2", "y2"}}` in pixels of the image sent (four corners for oriented boxes), plus
    `segments` `{"x": [...], "y": [...]}` for segmentation and `keypoints` `{"x", "y",
    "visible"}` for pose; a classifier answers its top five classes without boxes.
    """

    model_config = ConfigDict(extra="allow")

    modelId: str
    task: str
    runtime: str  # "onnx" (onnxruntime, no torch) or "torch" (the .pt through ultralytics)
    imgsz: int
    conf: float
    iou: float
    width: int
    height: int
    results: list[dict[str, Any]]
    speed_ms: dict[str, float]
