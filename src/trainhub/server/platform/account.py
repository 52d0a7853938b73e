"""`GET /api/account/summary`: who a key belongs to, for `yolo login` of ultralytics 8.4.

`yolo login KEY` saves the key on any 2xx and says "Invalid API key" on 401
(docs/protocol/platform.md §4.7); the body follows the SDK's typed answer for its other users.
"""

from typing import Any

from trainhub.protocol import paths
from trainhub.protocol.platform import AccountSummary
from trainhub.server.deps import CurrentUser, Db
from trainhub.server.platform.routing import create_router
from trainhub.server.services import users

router = create_router()


@router.get(paths.PLATFORM_ACCOUNT, response_model=AccountSummary)
def account_summary(user: CurrentUser, db: Db) -> dict[str, Any]:
    """Return the caller's name and how many projects, datasets and models they own."""
    counts = users.count_owned(db, user.user_id)
    return {
        "username": user.name,
        "name": user.name,
        "accountType": "admin" if user.is_admin else "user",
        "plan": "self-hosted",
        "creditsCents": 0,
        "counts": counts,
        "teams": [],
    }
