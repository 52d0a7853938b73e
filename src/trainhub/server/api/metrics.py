"""Training metrics: upload per epoch (an idempotent upsert), read back transposed.

See docs/protocol/hub-v1.md §5.8-§5.9.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.metrics import MetricSeries, MetricsUpload, StoredEpochs
from trainhub.server.bodies import body_of, json_body_schema
from trainhub.server.deps import CurrentUser, Db, OptionalUser, Writer, caller_id
from trainhub.server.responses import fast_json
from trainhub.server.services import training

router = APIRouter(tags=["metrics"])
# NaN and Infinity literals are accepted here: the stock clients send them (stored as null)
Upload = Annotated[MetricsUpload, Depends(body_of(MetricsUpload, lenient=True))]


@router.post(
    paths.MODEL,
    response_model=Envelope[StoredEpochs],
    openapi_extra=json_body_schema(MetricsUpload),
)
async def upload_metrics(
    model_id: str, user: CurrentUser, upload: Upload, writer: Writer, response: Response
) -> Response:
    """Store metrics for one or more epochs; a re-sent epoch merges into the stored one."""
    epochs = training.parse_metrics(upload.metrics)
    stored = await writer.submit(model_id, user.user_id, epochs)
    body = {"success": True, "message": "metrics stored", "data": {"epochs": stored}}
    return fast_json(body, response.headers)


@router.get(paths.MODEL_METRICS, response_model=Envelope[list[MetricSeries]])
def read_metrics(model_id: str, user: OptionalUser, db: Db) -> dict[str, Any]:
    """Return one series per metric name, keyed by epoch; non-finite values are null."""
    return {"success": True, "data": training.read_metrics(db, model_id, caller_id(user))}
