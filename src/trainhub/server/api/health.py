"""`GET /healthz`: 200 when the database and storage work, 503 otherwise."""

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from trainhub.protocol import paths
from trainhub.server.deps import Db, StorageDep, public
from trainhub.server.errors import error_response

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get(paths.HEALTH, response_model=None)
@public
def health(db: Db, storage: StorageDep) -> dict[str, Any] | JSONResponse:
    """Check the database and the storage.

    Anyone may call this, so a failure names the part that failed and nothing more (no paths,
    hosts or driver messages); the server log has the details.
    """
    for part, check in (("database", db.ping), ("storage", storage.check)):
        try:
            check()
        except Exception:
            logger.warning("health check of the %s failed", part, exc_info=True)
            return error_response(503, f"unhealthy: the {part} check failed; see the server log")
    return {"success": True, "data": {"database": "ok", "storage": "ok"}}
