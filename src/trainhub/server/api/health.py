"""`GET /healthz`: 200 when the database, storage and job queue work, 503 otherwise.

The answer also says how many jobs wait in the queue and how many workers are alive
(docs/server.md, Workers); no worker is not a failure: training works without one.
"""

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from trainhub.protocol import paths
from trainhub.server.deps import Db, SettingsDep, StorageDep, public
from trainhub.server.errors import error_response
from trainhub.server.request_state import QueueDep
from trainhub.server.services import exports

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get(paths.HEALTH, response_model=None)
@public
def health(
    db: Db, storage: StorageDep, queue: QueueDep, settings: SettingsDep
) -> dict[str, Any] | JSONResponse:
    """Check the database, the storage and the queue; report the queue's depth and workers.

    Anyone may call this, so a failure names the part that failed and nothing more (no paths,
    hosts or driver messages); the server log has the details.
    """
    depth = 0

    def read_depth() -> None:
        nonlocal depth
        depth = queue.depth()

    for part, check in (("database", db.ping), ("storage", storage.check), ("queue", read_depth)):
        try:
            check()
        except Exception:
            logger.warning("health check of the %s failed", part, exc_info=True)
            return error_response(503, f"unhealthy: the {part} check failed; see the server log")
    alive = exports.count_workers(db, settings)
    return {
        "success": True,
        "data": {
            "database": "ok",
            "storage": "ok",
            "queue": {"status": "ok", "depth": depth, "workers": alive},
        },
    }
