"""Chart data of the dashboard: columnar metric series, downsampled without losing the envelope.

The browser gets `{"epochs": [...], "series": {"name": [values...]}}`: one shared x column and one
column per metric, values rounded to six significant digits. A series longer than `max_points` is
cut into buckets, and each bucket keeps its first, minimum, maximum and last value, so spikes and
dips survive downsampling (the min/max envelope of the raw data is preserved exactly).
"""

import itertools
from typing import Any

from trainhub.server.db.metrics import Columns, Value
from trainhub.server.lru import LRUCache

# system/* are the Platform runs' CPU, RAM, disk and GPU samples (docs/protocol/platform.md §9.8)
GROUPS = ("train", "val", "metrics", "system", "model", "other")
SLOTS_PER_BUCKET = 4
DEFAULT_MAX_POINTS = 500


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


def _bounds(count: int, buckets: int) -> list[tuple[int, int]]:
    edges = [i * count // buckets for i in range(buckets + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _envelope(values: list[Value]) -> list[Value]:
    """Return first, then the bucket's min and max in time order, then last.

    min, max and index run in C over the bucket; only the filtering of gaps is a Python loop.
    """
    present = [v for v in values if v is not None]
    if not present:
        return [values[0], None, None, values[-1]]
    early, late = sorted((values.index(min(present)), values.index(max(present))))
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


class PayloadCache:
    """Chart payloads already computed, by model, metrics version and view; the newest kept.

    A chart of thousands of epochs costs tens of milliseconds to read and downsample; the page
    asks again whenever its live stream says the metrics changed, and every viewer asks once.
    The key holds the metrics' version (newest epoch, count, last change), so a new or changed
    epoch is never answered from the cache. Each payload remembers when the rows it was made
    from were last read whole (`read_at`, time.monotonic()), and `get` can refuse older ones.
    """

    def __init__(self, size: int = 64) -> None:
        self._entries: LRUCache[tuple[Any, ...], tuple[dict[str, Any], float]] = LRUCache(size)

    def get(self, key: tuple[Any, ...], read_since: float | None = None) -> dict[str, Any] | None:
        found = self._entries.get(key)
        if found is None or (read_since is not None and found[1] < read_since):
            return None
        return found[0]

    def put(self, key: tuple[Any, ...], payload: dict[str, Any], read_at: float) -> None:
        self._entries.put(key, (payload, read_at))
