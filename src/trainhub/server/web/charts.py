"""Chart data of the dashboard: columnar metric series, downsampled without losing the envelope.

The browser gets `{"epochs": [...], "series": {"name": [values...]}}`: one shared x column and one
column per metric, values rounded to six significant digits. A series longer than `max_points` is
cut into buckets, and each bucket keeps its first, minimum, maximum and last value, so spikes and
dips survive downsampling (the min/max envelope of the raw data is preserved exactly).
"""

import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainhub.server.db.tables import MetricRow

GROUPS = ("train", "val", "metrics", "model", "other")
SLOTS_PER_BUCKET = 4
DEFAULT_MAX_POINTS = 500
Value = float | None


@dataclass
class Columns:
    """Metric series sharing one column of epochs."""

    epochs: list[int] = field(default_factory=list)
    series: dict[str, list[Value]] = field(default_factory=dict)


def group_of(name: str) -> str:
    """Return the chart group of a metric: its prefix before "/" when known, else "other"."""
    prefix = name.split("/", 1)[0] if "/" in name else ""
    return prefix if prefix in GROUPS else "other"


def grouped(names: list[str]) -> dict[str, list[str]]:
    """Return metric names by group: groups in display order, names sorted, no empty groups."""
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for name in sorted(names):
        groups[group_of(name)].append(name)
    return {g: n for g, n in groups.items() if n}


def _number(value: Any) -> Value:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def columns_of(rows: list[tuple[int, dict[str, Any]]]) -> Columns:
    """Turn (epoch, {name: value}) rows, ordered by epoch, into columns (gaps are None).

    Stored values are already finite numbers or None (metrics are validated when written);
    anything else is turned into a gap.
    """
    names = sorted({name for _, values in rows for name in values})
    series = {name: [values.get(name) for _, values in rows] for name in names}
    for name, column in series.items():
        if not all(type(v) is float or v is None for v in column):
            series[name] = [_number(v) for v in column]
    return Columns([epoch for epoch, _ in rows], series)


def read_columns(
    session: Session, model_seq: int, first: int | None = None, last: int | None = None
) -> Columns:
    """Read a model's metrics between epochs `first` and `last` (inclusive) as columns."""
    query = select(MetricRow.epoch, MetricRow.values).where(MetricRow.model_seq == model_seq)
    if first is not None:
        query = query.where(MetricRow.epoch >= first)
    if last is not None:
        query = query.where(MetricRow.epoch <= last)
    rows = session.execute(query.order_by(MetricRow.epoch)).all()
    return columns_of([(epoch, _object(text)) for epoch, text in rows])


def _object(text: str) -> dict[str, Any]:
    value = json.loads(text, parse_constant=lambda _: None)  # NaN and Infinity become gaps
    return value if isinstance(value, dict) else {}


def _bounds(count: int, buckets: int) -> list[tuple[int, int]]:
    edges = [i * count // buckets for i in range(buckets + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _envelope(values: list[Value]) -> list[Value]:
    """Return first, then the bucket's min and max in time order, then last."""
    present = [i for i, v in enumerate(values) if v is not None]
    if not present:
        return [values[0], None, None, values[-1]]
    low = min(present, key=values.__getitem__)  # type: ignore[arg-type]  # None filtered out
    high = max(present, key=values.__getitem__)  # type: ignore[arg-type]  # None filtered out
    early, late = sorted((low, high))
    return [values[0], values[early], values[late], values[-1]]


def downsample(columns: Columns, max_points: int) -> Columns:
    """Return at most about `max_points` points per series, keeping each bucket's envelope."""
    count = len(columns.epochs)
    buckets = max(1, max_points // SLOTS_PER_BUCKET)
    if count <= max_points or count <= buckets:
        return columns
    result = Columns(series={name: [] for name in columns.series})
    for start, end in _bounds(count, buckets):
        size = end - start
        if size <= SLOTS_PER_BUCKET:
            result.epochs += columns.epochs[start:end]
            for name, values in columns.series.items():
                result.series[name] += values[start:end]
            continue
        picks = (start, start + size // 3, start + 2 * size // 3, end - 1)
        result.epochs += [columns.epochs[i] for i in picks]
        for name, values in columns.series.items():
            result.series[name] += _envelope(values[start:end])
    return result


def _round(value: Value) -> Value:
    return None if value is None else float(f"{value:.6g}")


def payload(columns: Columns, max_points: int, total: int | None = None) -> dict[str, Any]:
    """Return the JSON the charts load: columns (downsampled when long), groups and counts."""
    shown = downsample(columns, max_points)
    return {
        "epochs": shown.epochs,
        "series": {name: [_round(v) for v in values] for name, values in shown.series.items()},
        "groups": grouped(list(shown.series)),
        "total": len(columns.epochs) if total is None else total,
        "downsampled": shown is not columns,
    }


def latest_values(session: Session, model_seq: int) -> tuple[int | None, dict[str, Value]]:
    """Return the newest epoch with metrics and its values (the no-script table)."""
    row = session.execute(
        select(MetricRow.epoch, MetricRow.values)
        .where(MetricRow.model_seq == model_seq)
        .order_by(MetricRow.epoch.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, {}
    return row[0], {name: _number(v) for name, v in sorted(_object(row[1]).items())}
