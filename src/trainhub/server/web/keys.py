"""Settings (`/settings`): the signed-in user's API keys: create (shown once, in the spelling of
each client: docs/protocol/platform.md §9.9), list, revoke."""

from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from trainhub.protocol.ids import platform_spelling
from trainhub.server.deps import Db, Keys, SettingsDep
from trainhub.server.services import users
from trainhub.server.services.sessions import SessionUser
from trainhub.server.state import request_hub
from trainhub.server.web import snippets
from trainhub.server.web.auth import SignedIn, clear_session_cookie
from trainhub.server.web.csrf import require_csrf
from trainhub.server.web.render import render
from trainhub.server.web.routing import create_router, see_other

router = create_router()
PROTECTED = [Depends(require_csrf)]


def _settings_page(
    request: Request,
    user: SessionUser,
    db: Db,
    *,
    new_key: str | None = None,
    notice: str | None = None,
) -> Response:
    keys = users.list_keys(db, user.user_id)
    return render(
        request,
        "settings.html",
        user,
        keys=keys,
        new_key=new_key,
        notice=notice,
        env=snippets.environment(request_hub(request).links.public_url),
        platform_env=snippets.platform_environment(request_hub(request).links.public_url),
        platform_key=platform_spelling(new_key) if new_key else None,
    )


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request, user: SignedIn, db: Db) -> Response:
    """Show the user's API keys."""
    revoked = request.query_params.get("notice") == "revoked"
    return _settings_page(request, user, db, notice="The key was revoked." if revoked else None)


@router.post("/settings/keys", response_class=HTMLResponse, dependencies=PROTECTED)
def create_key(
    request: Request,
    user: SignedIn,
    db: Db,
    settings: SettingsDep,
    name: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Create an API key and show it this once (the page is not cached)."""
    _, key = users.create_key(db, user.user_id, name.strip(), max_live=settings.max_keys_per_user)
    return _settings_page(request, user, db, new_key=key)


@router.post("/settings/keys/{key_id}/revoke", dependencies=PROTECTED)
def revoke_key(request: Request, key_id: str, user: SignedIn, db: Db, keys: Keys) -> Response:
    """Revoke one of the user's keys; revoking the session's own key signs the browser out."""
    row = users.revoke_key(db, keys, user.user_id, key_id)
    if row.id != user.key_id:
        return see_other("/settings?notice=revoked")
    response = see_other("/login?signed_out=1")
    clear_session_cookie(request, response)
    return response
