"""Queries of stored metrics: the idempotent upsert, the read-back, columns for charts.

An epoch's metrics are stored as the JSON text of `{name: number | null}` (MetricRow.values).
`decode_values` is the one reader of that text: every query here goes through it.
"""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from trainhub.protocol.metrics import EpochMetrics
from trainhub.server.db.tables import MetricRow, utcnow

MAIN_METRIC = "metrics/mAP50-95(B)"
Value = float | int | None


def encode_values(values: EpochMetrics) -> str:
    """Return the stored text of one epoch's metrics (values already finite or None)."""
    return orjson.dumps(values).decode()


def _number(value: Any) -> Value:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return value
    return value if math.isfinite(value) else None


def decode_values(text: str) -> dict[str, Value]:
    """Return one stored epoch's metrics as {name: number | None}.

    Values were validated when written (finite numbers or null: parse_epoch_metrics refuses
    anything else), so the stored text is read as it is, with orjson. Text that orjson refuses
    (NaN or Infinity, which no version ever stored, or damage) is read the slow way, every odd
    value becoming None: never an error.
    """
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = None
    if isinstance(value, dict):
        return value
    value = json.loads(text, parse_constant=lambda _: None)
    if not isinstance(value, dict):
        return {}
    return {str(name): _number(v) for name, v in value.items()}


def upsert_metrics(session: Session, model_seq: int, epochs: dict[int, EpochMetrics]) -> None:
    """Merge each epoch's metrics into what is stored, newer values winning."""
    existing = {
        m.epoch: m
        for m in session.scalars(
            select(MetricRow).where(
                MetricRow.model_seq == model_seq, MetricRow.epoch.in_(list(epochs))
            )
        )
    }
    now = utcnow()
    for epoch, values in epochs.items():
        stored = existing.get(epoch)
        if stored is None:
            session.add(
                MetricRow(
                    model_seq=model_seq, epoch=epoch, values=encode_values(values), updated_at=now
                )
            )
        else:
            stored.values = encode_values({**decode_values(stored.values), **values})
            stored.updated_at = now


def read_series(session: Session, model_seq: int) -> list[dict[str, Any]]:
    """Return the metrics transposed: one series per name, keyed by epoch (as a string)."""
    series: dict[str, dict[str, Value]] = {}
    rows = session.execute(
        select(MetricRow.epoch, MetricRow.values)
        .where(MetricRow.model_seq == model_seq)
        .order_by(MetricRow.epoch)
    )
    for epoch, text in rows:
        for name, value in decode_values(text).items():
            series.setdefault(name, {})[str(epoch)] = value
    return [{"meta": {"name": name}, "data": data} for name, data in sorted(series.items())]


@dataclass
class Columns:
    """Metric series sharing one column of epochs (gaps are None)."""

    epochs: list[int] = field(default_factory=list)
    series: dict[str, list[Value]] = field(default_factory=dict)


def columns_of(rows: list[tuple[int, dict[str, Value]]]) -> Columns:
    """Turn (epoch, {name: value}) rows, ordered by epoch, into columns (gaps are None).

    When every row names the same metrics in the same order (one trainer writes them so), the
    transpose is one zip in C; otherwise each column is gathered name by name.
    """
    epochs = [epoch for epoch, _ in rows]
    if rows:
        first = list(rows[0][1])
        if all(list(values) == first for _, values in rows):
            columns = zip(*(list(values.values()) for _, values in rows), strict=True)
            return Columns(epochs, dict(sorted(zip(first, map(list, columns), strict=True))))
    names = sorted({name for _, values in rows for name in values})
    return Columns(epochs, {name: [values.get(name) for _, values in rows] for name in names})


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
    return columns_of([(epoch, decode_values(text)) for epoch, text in rows])


def latest_values(session: Session, model_seq: int) -> tuple[int | None, dict[str, Value]]:
    """Return the newest epoch with metrics and its values."""
    row = session.execute(
        select(MetricRow.epoch, MetricRow.values)
        .where(MetricRow.model_seq == model_seq)
        .order_by(MetricRow.epoch.desc())
        .limit(1)
    ).first()
    if row is None:
        return None, {}
    return row[0], dict(sorted(decode_values(row[1]).items()))


@dataclass(frozen=True)
class Version:
    """What a model's metrics were at one moment: newest epoch, how many, last change."""

    epoch: int | None
    count: int
    changed: datetime | None

    def state(self) -> dict[str, Any]:
        """Return the version as the live `metrics` event and the chart data name it."""
        changed = self.changed
        text = changed.isoformat() if isinstance(changed, datetime) else changed
        return {"epoch": self.epoch, "count": self.count, "changed": str(text)}


def metrics_version(session: Session, model_seq: int) -> Version:
    """Return the newest epoch, the number of epochs and the last change of a model's metrics."""
    newest, count, changed = session.execute(
        select(func.max(MetricRow.epoch), func.count(), func.max(MetricRow.updated_at)).where(
            MetricRow.model_seq == model_seq
        )
    ).one()
    return Version(newest, count, changed)


def metrics_state(session: Session, model_seq: int) -> dict[str, Any]:
    """Return the state of a model's metrics (`Version.state`)."""
    return metrics_version(session, model_seq).state()


def read_changed(
    session: Session, model_seq: int, since: Version
) -> list[tuple[int, dict[str, Value]]]:
    """Return the epochs written after `since`, in order: newer epochs and epochs changed since."""
    query = select(MetricRow.epoch, MetricRow.values).where(MetricRow.model_seq == model_seq)
    if since.epoch is not None and since.changed is not None:
        query = query.where(
            or_(MetricRow.epoch > since.epoch, MetricRow.updated_at > since.changed)
        )
    rows = session.execute(query.order_by(MetricRow.epoch)).all()
    return [(epoch, decode_values(text)) for epoch, text in rows]


def extended(columns: Columns, rows: list[tuple[int, dict[str, Value]]]) -> Columns:
    """Return `columns` with `rows` (later epochs, in order) appended; `columns` is not changed.

    A metric that only the new rows name gets gaps before them, a metric they lack gets gaps
    in them, as `columns_of` would have made them from all the rows.
    """
    if not rows:
        return columns
    added = columns_of(rows)
    gap_before: list[Value] = [None] * len(columns.epochs)
    gap_after: list[Value] = [None] * len(added.epochs)
    names = sorted(columns.series.keys() | added.series.keys())
    return Columns(
        columns.epochs + added.epochs,
        {
            name: columns.series.get(name, gap_before) + added.series.get(name, gap_after)
            for name in names
        },
    )


def main_metric(epochs: Iterable[EpochMetrics]) -> float | None:
    """Return the highest main metric (mAP50-95) among `epochs`, None when none has one."""
    found = [
        v
        for values in epochs
        if isinstance(v := values.get(MAIN_METRIC), int | float) and not isinstance(v, bool)
    ]
    return float(max(found)) if found else None
