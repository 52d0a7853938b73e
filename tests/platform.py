"""Bodies shaped like the ones ultralytics 8.4.190 sends to the Platform endpoints, and a client.

The field names and value types follow docs/protocol/platform.md §4.2: train arguments as
strings, a system sample, the final-validation `epoch_end` without `val/*` losses, console chunks
with ANSI codes and local-time prefixes. `PlatformClient` sends them as the SDK does: JSON with a
Bearer key, one request per event.
"""

import itertools
import random
from dataclasses import dataclass, field
from typing import Any

from tests.testclient import TestClient

EVENTS = "/api/webhooks/training/metrics"
UPLOAD_REQUEST = "/api/webhooks/models/upload"
_uniq = itertools.count()


def system_sample(rng: random.Random | None = None) -> dict[str, Any]:
    """Return a `system` sample like SystemLogger.get_metrics(rates=True) on a one-GPU host."""
    rng = rng or random.Random()
    return {
        "cpu": round(rng.uniform(5, 95), 1),
        "ram": round(rng.uniform(20, 80), 1),
        "disk": [{"mount": "/", "used_gb": 120.5, "total_gb": 512.0}],
        "disk_io": {"read_mbs": round(rng.uniform(0, 50), 2), "write_mbs": 1.5},
        "network": {"recv_mbs": 0.2, "sent_mbs": 0.1},
        "gpus": {"0": {"usage": 93.0, "memory": 61.5, "temp": 70, "power": 240}},
    }


def started_data(epochs: int = 3, *, save_dir: str = "/runs/detect/train") -> dict[str, Any]:
    """Return `training_started` data: every argument a string, environment, a system sample."""
    args = {
        "task": "detect",
        "mode": "train",
        "model": "yolo11n.yaml",
        "data": "shapes.yaml",
        "epochs": str(epochs),
        "batch": "4",
        "imgsz": "64",
        "patience": "100",
        "device": "cpu",
        "project": "alice/my-proj",
        "name": "train",
        "save_dir": save_dir,
        "resume": "False",
        "amp": "False",
        "cache": "False",
    }
    return {
        "trainArgs": args,
        "epochs": epochs,
        "device": "cpu",
        "environment": {
            "ultralyticsVersion": "8.4.190",
            "hostname": "trainer-1",
            "os": "Linux-6.1-x86_64",
            "environment": "Linux",
            "pythonVersion": "3.11.9",
            "pythonExecutable": "/usr/bin/python3",
            "cpuCount": 8,
            "cpu": "Test CPU",
            "command": "yolo train model=yolo11n.yaml project=alice/my-proj",
            "totalRamGb": 31.3,
            "totalDiskGb": 512.0,
            "gitCommit": "abc123def456",
            "gitBranch": "main",
        },
        # a fresh process samples its system differently: part of what tells runs apart
        "system": {**system_sample(), "sample": next(_uniq)},
    }


def epoch_data(epoch: int, *, final: bool = False, map5095: float = 0.1) -> dict[str, Any]:
    """Return `epoch_end` data; `final` is the extra one for best.pt (no `val/*` losses)."""
    metrics: dict[str, Any] = {
        "train/box_loss": 2.0 - 0.1 * epoch,
        "train/cls_loss": 3.0 - 0.1 * epoch,
        "train/dfl_loss": 1.5,
        "metrics/precision(B)": 0.2,
        "metrics/recall(B)": 0.3,
        "metrics/mAP50(B)": 0.4,
        "metrics/mAP50-95(B)": map5095,
        "lr": 0.01,
    }
    if not final:
        metrics.update({"val/box_loss": 2.2, "val/cls_loss": 3.1, "val/dfl_loss": 1.6})
    data: dict[str, Any] = {
        "epoch": epoch,
        "metrics": metrics,
        "system": system_sample(),
        "fitness": map5095,
        "best_fitness": map5095,
    }
    if epoch == 0 and not final:
        data["modelInfo"] = {"parameters": 2590230, "gflops": 6.4, "speedMs": 12.5}
    return data


def console_data(chunk_id: int, *lines: str) -> dict[str, Any]:
    """Return `console_output` data: timestamped lines, ANSI codes kept."""
    content = "\n".join(f"[2026-12-04 10:00:00] {line}" for line in lines)
    return {"chunkId": chunk_id, "content": content, "lineCount": len(lines), "progress": {}}


def complete_data(
    run_id: int | None, *, model_path: str | None = None, classes: int = 1
) -> dict[str, Any]:
    """Return `training_complete` data with results, class names and the five plots."""
    xs = [i / 100 for i in range(101)]
    results: dict[str, Any] = {
        "metrics": {"metrics/mAP50-95(B)": 0.25, "metrics/mAP50(B)": 0.5, "fitness": 0.27},
        "bestEpoch": 1,
        "bestFitness": 0.27,
    }
    if model_path is not None:
        results.update(modelPath=model_path, modelSize=1234)
    curves = [
        {"type": kind, "x": xs, "y": [[1 - x for x in xs] for _ in range(classes)]}
        for kind in ("f1_curve", "precision_curve", "recall_curve")
    ]
    return {
        "runId": run_id,
        "results": results,
        "classNames": [f"class{i}" for i in range(classes)],
        "plots": [
            {"type": "confusion_matrix", "matrix": [[3, 1], [0, 0]]},
            {"type": "pr_curve", "x": xs, "y": [[1 - x for x in xs]], "ap": [0.5]},
            *curves,
        ],
    }


@dataclass
class Run:
    """What the hub answered a run's `training_started`."""

    model_id: str
    run_id: int
    answer: dict[str, Any] = field(default_factory=dict)


class PlatformClient:
    """Sends Platform events to an in-process app the way the SDK does (Bearer, JSON)."""

    def __init__(self, app: Any, key: str) -> None:
        self.http = TestClient(app, headers={"authorization": f"Bearer {key}"})

    def event(self, event: str, data: dict[str, Any], **identity: Any) -> Any:
        """Send one event; return the response."""
        return self.http.post(EVENTS, json={"event": event, "data": data, **identity})

    def start(self, project: str = "alice/my-proj", name: str = "train", **kwargs: Any) -> Run:
        """Start a run with project/name and return its ids (asserting a good answer)."""
        response = self.event(
            "training_started", started_data(**kwargs), project=project, name=name
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        return Run(answer["modelId"], answer["runId"], answer)

    def ok(self, event: str, data: dict[str, Any], model_id: str) -> dict[str, Any]:
        """Send an event for a model and return its answer, asserting a 200 JSON object."""
        response = self.event(event, data, modelId=model_id)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        answer = response.json()
        assert isinstance(answer, dict) and answer, answer
        return answer
