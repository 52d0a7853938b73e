"""What a running trainer sends: metrics per epoch and heartbeats.

See docs/protocol/hub-v1.md §5.8-§5.11.
"""

import math
from dataclasses import dataclass
from typing import Any

from trainhub.protocol.metrics import EpochMetrics, parse_epoch, parse_epoch_metrics
from trainhub.protocol.models import Heartbeat
from trainhub.server.db import metrics as metric_queries
from trainhub.server.db import models as queries
from trainhub.server.db import owned
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow
from trainhub.server.errors import ValidationError

MAX_EPOCHS_PER_UPLOAD = 10_000
MIN_INTERVAL_S, MAX_INTERVAL_S = 1.0, 24 * 3600.0


def parse_metrics(raw: dict[str, Any]) -> dict[int, EpochMetrics]:
    """Return {epoch: metrics} from an upload's `metrics`; ValidationError says what is wrong."""
    if not raw:
        raise ValidationError("'metrics' must be a non-empty object of epoch -> JSON string")
    if len(raw) > MAX_EPOCHS_PER_UPLOAD:
        raise ValidationError(f"send at most {MAX_EPOCHS_PER_UPLOAD} epochs per request")
    try:
        return {parse_epoch(str(key)): parse_epoch_metrics(value) for key, value in raw.items()}
    except (ValueError, TypeError, OverflowError) as exc:  # an integer too big for a float
        raise ValidationError(f"bad metrics: {exc}") from exc


def record_metrics(
    db: Database, model_id: str, user_id: str, epochs: dict[int, EpochMetrics]
) -> list[int]:
    """Store metrics for some epochs (a re-sent epoch merges); return the epochs stored."""
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        queries.record_metrics(session, row, epochs)
    return sorted(epochs)


def read_metrics(db: Database, model_id: str, reader_id: str | None) -> list[dict[str, Any]]:
    """Return one series per metric name, keyed by epoch (non-finite values are null)."""
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, reader_id)
        return metric_queries.read_series(session, row.seq)


def beat_interval_s(value: float | None, default_s: float) -> float:
    """Return the seconds to the next beat a heartbeat announces, kept within sane bounds."""
    if value is None:
        return default_s
    if not math.isfinite(value):
        raise ValidationError("'interval' must be the number of seconds between beats")
    return min(max(float(value), MIN_INTERVAL_S), MAX_INTERVAL_S)


@dataclass(frozen=True)
class Beat:
    """What a heartbeat did: the agent id to send next, and how many agents train the model."""

    agent_id: str
    concurrent_agents: int


def record_beat(
    db: Database,
    model_id: str,
    user_id: str,
    beat: Heartbeat,
    *,
    default_interval_s: float,
    max_agents: int,
) -> Beat:
    """Record that a trainer is alive (or finished, or failed) for a model."""
    interval_s = beat_interval_s(beat.interval, default_interval_s)
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        issued = queries.heartbeat(
            session,
            row,
            agent_id=beat.agentId,
            name=beat.agent,
            interval_s=interval_s,
            state=beat.state,
            max_agents=max_agents,
        )
        return Beat(issued, queries.concurrent_agents(session, row))
