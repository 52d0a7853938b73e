"""Training metrics: upload per epoch (an idempotent upsert), read back transposed.

See docs/protocol/hub-v1.md §5.8, §5.9 and §16.3.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.metrics import EpochMetrics, MetricSeries, parse_epoch, parse_epoch_metrics
from trainhub.server.bodies import json_body_schema, lenient_json_object
from trainhub.server.db import models as queries
from trainhub.server.db import owned
from trainhub.server.db.tables import ModelRow
from trainhub.server.deps import CurrentUser, Db, OptionalUser, caller_id
from trainhub.server.errors import ValidationError

router = APIRouter(tags=["metrics"])
MAX_EPOCHS_PER_UPLOAD = 10_000

UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["metrics"],
    "properties": {
        "type": {"type": "string", "enum": ["metrics"]},
        "metrics": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def parse_upload(body: dict[str, Any]) -> dict[int, EpochMetrics]:
    """Return {epoch: metrics} from an upload body; ValidationError says what is wrong."""
    if body.get("type", "metrics") != "metrics":
        raise ValidationError('POST /v1/models/{id} takes metrics: send {"type": "metrics", ...}')
    raw = body.get("metrics")
    if not isinstance(raw, dict) or not raw:
        raise ValidationError("'metrics' must be a non-empty object of epoch -> JSON string")
    if len(raw) > MAX_EPOCHS_PER_UPLOAD:
        raise ValidationError(f"send at most {MAX_EPOCHS_PER_UPLOAD} epochs per request")
    try:
        return {parse_epoch(str(key)): parse_epoch_metrics(value) for key, value in raw.items()}
    except (ValueError, TypeError, OverflowError) as exc:  # an integer too big for a float
        raise ValidationError(f"bad metrics: {exc}") from exc


@router.post(
    paths.MODEL,
    response_model=Envelope[dict[str, Any]],
    openapi_extra=json_body_schema(UPLOAD_SCHEMA),
)
def upload_metrics(
    model_id: str,
    user: CurrentUser,
    db: Db,
    body: Annotated[dict[str, Any], Depends(lenient_json_object)],
) -> dict[str, Any]:
    """Store metrics for one or more epochs; a re-sent epoch merges into the stored one."""
    epochs = parse_upload(body)
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user.user_id, write=True)
        queries.upsert_metrics(session, row, epochs)
    return {"success": True, "message": "metrics stored", "data": {"epochs": sorted(epochs)}}


@router.get(paths.MODEL_METRICS, response_model=Envelope[list[MetricSeries]])
def read_metrics(model_id: str, user: OptionalUser, db: Db) -> dict[str, Any]:
    """Return one series per metric name, keyed by epoch; non-finite values are null."""
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, caller_id(user))
        series = queries.read_metrics(session, row)
    return {"success": True, "data": series}
