"""`GET /metrics`: the server's Prometheus metrics, for the metrics token or an admin.

Not public (docs/decisions/0016-metrics-access.md): request counts by route and the number of
active runs say how a hub is used. A scraper sends `Authorization: Bearer <metrics_token>`; an
admin's API key works too. The text holds no credential, user name, id or path.
"""

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from trainhub.server.deps import public, require_metrics_reader
from trainhub.server.state import request_hub
from trainhub.server.telemetry import CONTENT_TYPE

router = APIRouter(tags=["health"])


# left out of the API description: it is for Prometheus, not for hub clients
@router.get("/metrics", response_class=Response, include_in_schema=False)
@public  # checks the metrics token or an admin's key itself
async def metrics(request: Request) -> Response:
    """Return every metric in Prometheus' text format."""
    await require_metrics_reader(request)
    body = await run_in_threadpool(request_hub(request).telemetry.render)
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
