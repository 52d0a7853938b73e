"""Training metrics: upload per epoch (an idempotent upsert), read back transposed.

See docs/protocol/hub-v1.md §5.8-§5.9.
"""

from fastapi import APIRouter, Request, Response

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.metrics import MetricSeries, MetricsUpload, StoredEpochs
from trainhub.server.bodies import json_body_schema, read_body
from trainhub.server.deps import CurrentUser, Db, OptionalUser, caller_id
from trainhub.server.leanroutes import lean
from trainhub.server.responses import fast_json
from trainhub.server.services import training
from trainhub.server.state import request_hub

router = APIRouter(tags=["metrics"])


@router.post(
    paths.MODEL,
    response_model=Envelope[StoredEpochs],
    openapi_extra=json_body_schema(MetricsUpload),
)
@lean
async def upload_metrics(
    model_id: str, user: CurrentUser, request: Request, response: Response
) -> Response:
    """Store metrics for one or more epochs; a re-sent epoch merges into the stored one.

    A trainer calls this every epoch, so the route is lean: one dependency (the caller), the
    body read in the route, an answer encoded by orjson.
    """
    # NaN and Infinity literals are accepted here: the stock clients send them (stored as null)
    upload = await read_body(request, MetricsUpload, lenient=True)
    epochs = training.parse_metrics(upload.metrics)
    stored = await request_hub(request).metrics.submit(model_id, user.user_id, epochs)
    body = {"success": True, "message": "metrics stored", "data": {"epochs": stored}}
    return fast_json(body, response.headers)


@router.get(paths.MODEL_METRICS, response_model=Envelope[list[MetricSeries]])
def read_metrics(model_id: str, user: OptionalUser, db: Db, response: Response) -> Response:
    """Return one series per metric name, keyed by epoch; non-finite values are null.

    A long run's read-back holds hundreds of thousands of values: it is encoded by orjson
    directly, not validated again through its response model (which documents its shape).
    """
    series = training.read_metrics(db, model_id, caller_id(user))
    return fast_json({"success": True, "data": series}, response.headers)
