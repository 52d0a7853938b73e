"""What a running trainer sends: metrics per epoch (heartbeats are in heartbeats.py).

See docs/protocol/hub-v1.md §5.8-§5.9.
"""

from typing import Any

from trainhub.protocol.metrics import EpochMetrics, parse_epoch, parse_epoch_metrics
from trainhub.server.db import changes, owned
from trainhub.server.db import metrics as metric_queries
from trainhub.server.db import models as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow
from trainhub.server.errors import ValidationError

MAX_EPOCHS_PER_UPLOAD = 10_000


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
        changes.note_model(session, row)
    return sorted(epochs)


def read_metrics(db: Database, model_id: str, reader_id: str | None) -> list[dict[str, Any]]:
    """Return one series per metric name, keyed by epoch (non-finite values are null)."""
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, reader_id)
        return metric_queries.read_series(session, row.seq)
