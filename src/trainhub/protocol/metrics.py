"""Per-epoch metrics on the wire (docs/protocol/hub-v1.md §5.8-§5.9, §16.3).

An upload maps the epoch index (a string) to a JSON-encoded string of `{name: number}`. Python's
`json.dumps` writes `NaN`/`Infinity`, so parsing is lenient; non-finite values become `None`.
"""

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, Field

MetricValue = float | int | None
EpochMetrics = dict[str, MetricValue]

MAX_EPOCH = 1_000_000
MAX_METRICS_PER_EPOCH = 1_000
MAX_METRIC_NAME_LENGTH = 200


class MetricsUpload(BaseModel):
    """Body of `POST /v1/models/{id}`: several epochs of metrics at once."""

    type: Literal["metrics"] = "metrics"
    metrics: dict[str, str | dict[str, Any]] = Field(
        description="Epoch (0-based, as a string) -> JSON string (or object) of name -> number."
    )


class MetricSeries(BaseModel):
    """One metric across epochs, as `GET /v1/models/{id}/metrics` returns it."""

    meta: dict[str, str]
    data: dict[str, MetricValue]


def is_valid_text(text: str) -> bool:
    """Tell whether `text` is valid Unicode (no lone surrogates) without NUL characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def parse_epoch(key: str) -> int:
    """Return the epoch number of a metrics key such as "3", or raise ValueError."""
    # ASCII only: str.isdigit() also takes Arabic-Indic and full-width digits, aliasing epochs
    if not (key.isascii() and key.isdigit() and len(key) <= 7) or int(key) > MAX_EPOCH:
        raise ValueError(f"epoch key {key[:40]!r} must be a whole number from 0 to {MAX_EPOCH}")
    return int(key)


def _finite(name: str, value: Any) -> MetricValue:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"metric {name[:80]!r} must be a number, got {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and abs(value) > 2**53:
        return float(value)
    return value


def parse_epoch_metrics(raw: str | dict[str, Any]) -> EpochMetrics:
    """Parse one epoch's metrics leniently (NaN, +-Infinity -> None); ValueError if malformed."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ValueError(f"metrics string is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError("each epoch's metrics must be a JSON object of name -> number")
    if len(raw) > MAX_METRICS_PER_EPOCH:
        raise ValueError(f"an epoch may carry at most {MAX_METRICS_PER_EPOCH} metrics")
    values: EpochMetrics = {}
    for name, value in raw.items():
        if not name or len(name) > MAX_METRIC_NAME_LENGTH:
            raise ValueError(f"metric names must have 1 to {MAX_METRIC_NAME_LENGTH} characters")
        if not is_valid_text(name):
            raise ValueError(f"metric name {ascii(name)[:80]} is not valid Unicode text")
        values[name] = _finite(name, value)
    return values


def encode_epoch_metrics(values: dict[str, float | int | None]) -> str:
    """Encode one epoch's metrics as the stock clients do (a JSON string; NaN allowed)."""
    return json.dumps(values)
