"""`GET /healthz`: 200 when the database and storage work, 503 otherwise.

The answer also says how many jobs wait in the queue and how many workers are alive
(docs/server.md, Workers); no worker is not a failure: training works without one. It says
where live updates come from (docs/dashboard.md, "Live updates"). A lost Redis makes the queue
and the live updates "degraded" but the replica still healthy (200): every replica shares that
Redis, and a load balancer that took them all out would stop training too.
"""

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from trainhub.protocol import paths
from trainhub.server.deps import Db, SettingsDep, StorageDep, public
from trainhub.server.errors import error_response
from trainhub.server.request_state import QueueDep
from trainhub.server.services import exports
from trainhub.server.state import request_hub

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get(paths.HEALTH, response_model=None)
@public
def health(
    request: Request, db: Db, storage: StorageDep, queue: QueueDep, settings: SettingsDep
) -> dict[str, Any] | JSONResponse:
    """Check the database, the storage and the queue; report the queue's depth and workers.

    Anyone may call this, so a failure names the part that failed and nothing more (no paths,
    hosts or driver messages); the server log has the details.
    """
    for part, check in (("database", db.ping), ("storage", storage.check)):
        try:
            check()
        except Exception:
            logger.warning("health check of the %s failed", part, exc_info=True)
            return error_response(503, f"unhealthy: the {part} check failed; see the server log")
    alive = exports.count_workers(db, settings)
    try:
        jobs: dict[str, Any] = {"status": "ok", "depth": queue.depth(), "workers": alive}
    except Exception:  # exports and predictions answer 503 meanwhile; training goes on
        logger.warning("health check of the queue failed", exc_info=True)
        jobs = {"status": "degraded", "depth": None, "workers": alive}
    return {
        "success": True,
        "data": {
            "database": "ok",
            "storage": "ok",
            "queue": jobs,
            "live": request_hub(request).changes.status(),
        },
    }
