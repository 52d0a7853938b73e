"""`POST /v1/auth`: tell a client whether its key is valid (docs/protocol/hub-v1.md §4.2)."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from trainhub.protocol import paths
from trainhub.server.deps import OptionalUser
from trainhub.server.errors import error_response

router = APIRouter(tags=["auth"])


@router.post(paths.AUTH, response_model=None)
def authenticate(user: OptionalUser) -> dict[str, Any] | JSONResponse:
    """Answer `success: true` with the user for a valid key; JSON `success: false` otherwise."""
    if user is None:
        return error_response(401, "no API key sent; send it as the x-api-key header")
    return {
        "success": True,
        "data": {"userId": user.user_id, "name": user.name, "isAdmin": user.is_admin},
    }
