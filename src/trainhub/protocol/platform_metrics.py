"""How a Platform `epoch_end` becomes one epoch of metrics (docs/protocol/platform.md §9.3, §9.8).

The trainer's metrics keep their names (`train/box_loss`, `metrics/mAP50-95(B)`, `lr`, ...); the
system sample becomes `system/*` and epoch 0's model information the `model/*` names the HUB
clients use, so every kind of number lands in the same per-epoch series and on the same charts.
Values are read leniently: a value that is not a number is left out, a non-finite one is null.
"""

import math
from typing import Any

from trainhub.protocol.metrics import (
    MAX_METRIC_NAME_LENGTH,
    MAX_METRICS_PER_EPOCH,
    EpochMetrics,
    MetricValue,
    is_valid_text,
)

MAX_GPUS = 16
GPU_FIELDS = ("usage", "memory", "temp", "power")
MODEL_INFO = {
    "parameters": "model/parameters",
    "gflops": "model/GFLOPs",
    "speedMs": "model/speed_PyTorch(ms)",
}
SYSTEM_RATES = {
    ("disk_io", "read_mbs"): "system/disk_read_mbs",
    ("disk_io", "write_mbs"): "system/disk_write_mbs",
    ("network", "recv_mbs"): "system/net_recv_mbs",
    ("network", "sent_mbs"): "system/net_sent_mbs",
}


def number(value: Any) -> MetricValue | bool:
    """Return a finite number as is, None for null or a non-finite float, False otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and abs(value) > 2**53:
        return float(value)
    return value


def numbers_of(raw: dict[str, Any]) -> EpochMetrics:
    """Return the entries of `raw` whose names are usable and whose values are numbers."""
    values: EpochMetrics = {}
    for name, value in raw.items():
        parsed = number(value)
        if parsed is False or not name or len(name) > MAX_METRIC_NAME_LENGTH:
            continue
        if is_valid_text(name):
            values[name] = parsed
        if len(values) >= MAX_METRICS_PER_EPOCH:
            break
    return values


def _put(values: EpochMetrics, name: str, raw: Any) -> None:
    parsed = number(raw)
    if parsed is not False:
        values[name] = parsed


def _disk_used_percent(disks: Any) -> float | None:
    """Return the used share of the root mount (else the first one listed), in percent."""
    if not isinstance(disks, list):
        return None
    mounts = [d for d in disks if isinstance(d, dict)]
    chosen = next((d for d in mounts if d.get("mount") == "/"), mounts[0] if mounts else None)
    if chosen is None:
        return None
    used, total = number(chosen.get("used_gb")), number(chosen.get("total_gb"))
    if not isinstance(used, int | float) or not isinstance(total, int | float) or total <= 0:
        return None
    return round(100.0 * used / total, 2)


def system_values(system: dict[str, Any] | None) -> EpochMetrics:
    """Return a system sample as `system/*` metrics: CPU, RAM, disk, rates and each GPU."""
    values: EpochMetrics = {}
    if not isinstance(system, dict):
        return values
    _put(values, "system/cpu", system.get("cpu"))
    _put(values, "system/ram", system.get("ram"))
    disk = _disk_used_percent(system.get("disk"))
    if disk is not None:
        values["system/disk"] = disk
    for (group, field), name in SYSTEM_RATES.items():
        part = system.get(group)
        if isinstance(part, dict):
            _put(values, name, part.get(field))
    gpus = system.get("gpus")
    if isinstance(gpus, dict):
        for index, gpu in list(gpus.items())[:MAX_GPUS]:
            if not (isinstance(gpu, dict) and str(index).isascii() and str(index).isdigit()):
                continue
            for field in GPU_FIELDS:
                _put(values, f"system/gpu{int(index)}_{field}", gpu.get(field))
    return values


def model_info_values(info: dict[str, Any] | None) -> EpochMetrics:
    """Return epoch 0's model information under the names the HUB clients use."""
    values: EpochMetrics = {}
    if isinstance(info, dict):
        for field, name in MODEL_INFO.items():
            _put(values, name, info.get(field))
    return values


def epoch_values(
    metrics: dict[str, Any], system: dict[str, Any] | None, model_info: dict[str, Any] | None
) -> EpochMetrics:
    """Return everything one `epoch_end` measured, as one epoch's metrics."""
    values = {**numbers_of(metrics), **system_values(system), **model_info_values(model_info)}
    return dict(list(values.items())[:MAX_METRICS_PER_EPOCH])


def is_final_validation(epoch: int, metrics: dict[str, Any], planned_epochs: int | None) -> bool:
    """Tell whether an `epoch_end` is the extra one for the final validation of best.pt.

    It comes once more after training, numbered one past the last epoch, and carries results but
    no `val/*` losses; numbered at or past the planned epochs, it cannot be a training epoch.
    """
    if planned_epochs and epoch >= planned_epochs:
        return True
    has_results = any(name.startswith("metrics/") for name in metrics)
    return has_results and not any(name.startswith("val/") for name in metrics)
