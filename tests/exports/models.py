"""Tiny YOLO models and ultralytics' own predictions, made in the export venv.

Run as `.venv-export/bin/python tests/exports/models.py COMMAND JSON`; the tests (in the dev venv,
without torch) call it through `support.run_in_export_venv`. Commands:

- `weights {"path", "task", "imgsz"}`: an untrained yolo11n (two classes; pose: one class and
  17 keypoints) saved as a final-weights checkpoint trained at `imgsz`, as HUB training leaves
  one. Building it takes a second; no download.
  With `"random_head": true` the head's weights are drawn at random (seeded), so that the model
  answers many boxes of all sizes and both classes: what a test of box decoding needs.
- `check {"onnx"?, "torchscript"?}`: load exported files as their runtimes do; answer their inputs.
- `reference {"model", "image", "conf", "iou", "imgsz"}`: ultralytics' own predictions for the
  model file (a .pt or an .onnx) on the image, as `Results.summary()`.
"""

import json
import sys
from copy import deepcopy
from pathlib import Path
from typing import Any

NAMES = {0: "square", 1: "disc"}
CONFIGS = {"detect": "yolo11n.yaml", "pose": "yolo11n-pose.yaml", "classify": "yolo11n-cls.yaml"}


def weights(p: dict[str, Any]) -> dict[str, Any]:
    import torch
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel, PoseModel

    task = p.get("task", "detect")
    if task == "pose":
        model = PoseModel(CONFIGS[task], nc=1, data_kpt_shape=(17, 3), verbose=False)
        model.names = {0: "person"}
    elif task == "classify":
        model = ClassificationModel(CONFIGS[task], nc=2, verbose=False)
        model.names = dict(NAMES)
    else:
        model = DetectionModel(CONFIGS[task], nc=2, verbose=False)
        model.names = dict(NAMES)
    if p.get("random_head"):
        torch.manual_seed(int(p.get("seed", 0)))
        for module in model.modules():  # He init keeps the features alive through 20 layers
            if isinstance(module, torch.nn.Conv2d) and module.weight.requires_grad:
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        head = model.model[-1]
        branches = [getattr(head, name) for name in ("cv2", "cv3", "cv4") if hasattr(head, name)]
        for branch in (b for branches_ in branches for b in branches_):  # not the DFL
            torch.nn.init.normal_(branch[-1].weight, 0.0, 0.05)
            torch.nn.init.normal_(branch[-1].bias, 0.0, 0.5)
        if hasattr(head, "reg_max"):  # box distances of a few strides, not the whole image
            for branch in head.cv2:
                bins = torch.arange(head.reg_max, dtype=torch.float32).repeat(4)
                branch[-1].bias.data = -0.8 * bins
    args = {"task": task, "imgsz": int(p.get("imgsz", 64)), "model": CONFIGS[task]}
    model.args = args
    checkpoint = {
        "epoch": -1,
        "best_fitness": None,
        "model": deepcopy(model).half(),
        "train_args": args,
        "date": "2026-01-01T00:00:00",
        "version": "8.3.253",
    }
    Path(p["path"]).parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, p["path"])
    return {"path": p["path"], "names": model.names}


def reference(p: dict[str, Any]) -> dict[str, Any]:
    from ultralytics import YOLO

    model = YOLO(p["model"], task=p.get("task"))
    result = model.predict(
        p["image"], conf=p["conf"], iou=p["iou"], imgsz=p["imgsz"], device="cpu", verbose=False
    )[0]
    if result.probs is not None:
        top = [
            {"class": int(i), "confidence": float(c)}
            for i, c in zip(result.probs.top5, result.probs.top5conf.tolist(), strict=True)
        ]
        return {"results": top, "shape": list(result.orig_shape)}
    return {"results": result.summary(decimals=5), "shape": list(result.orig_shape)}


def check(p: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if p.get("onnx"):
        import onnx
        import onnxruntime

        onnx.checker.check_model(onnx.load(p["onnx"]))
        session = onnxruntime.InferenceSession(p["onnx"], providers=["CPUExecutionProvider"])
        found["onnx"] = {
            "input": session.get_inputs()[0].shape,
            "metadata": session.get_modelmeta().custom_metadata_map,
        }
    if p.get("torchscript"):
        import torch

        module = torch.jit.load(p["torchscript"], map_location="cpu")
        output = module(torch.zeros(1, 3, p.get("imgsz", 64), p.get("imgsz", 64)))
        found["torchscript"] = {"output": list(output.shape)}
    return found


COMMANDS = {"weights": weights, "reference": reference, "check": check}

if __name__ == "__main__":
    outcome = COMMANDS[sys.argv[1]](json.loads(sys.argv[2]))
    print("RESULT " + json.dumps(outcome))  # noqa: T201 - read by support.run_in_export_venv
