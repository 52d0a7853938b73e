"""Dashboard sign-in: a signed session cookie naming an API key id, checked on every request.

The cookie holds the key's id, when it was issued and an HMAC over both, never the key itself.
Every request looks the id up in `api_keys`, so revoking a key signs its sessions out at once.
"""

import base64
import hashlib
import hmac
import time
from typing import Annotated

from fastapi import Depends, Request, Response

from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ApiKeyRow
from trainhub.server.deps import Principal, get_db, principal_where
from trainhub.server.errors import NotAuthenticatedError
from trainhub.server.links import Links

COOKIE_NAME = "trainhub_session"
SESSION_MAX_AGE_S = 14 * 24 * 3600


class SignInRequired(NotAuthenticatedError):
    """No valid dashboard session: pages redirect to /login, data endpoints answer 401."""

    def __init__(self) -> None:
        super().__init__("sign in to the dashboard with an API key at /login")


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, f"dashboard-session|{message}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def create_session_value(secret: bytes, key_id: str, now: float | None = None) -> str:
    """Return the cookie value for a session of the API key `key_id`."""
    issued = int(time.time() if now is None else now)
    return f"{key_id}.{issued}.{_mac(secret, f'{key_id}.{issued}')}"


def read_session_value(secret: bytes, value: str, now: float | None = None) -> str | None:
    """Return the key id a cookie value names, None when it is forged, malformed or too old."""
    key_id, _, rest = value.partition(".")
    issued, _, signature = rest.partition(".")
    if not key_id or not issued.isdigit() or not signature:
        return None
    if not hmac.compare_digest(signature, _mac(secret, f"{key_id}.{issued}")):
        return None
    age = (time.time() if now is None else now) - int(issued)
    return key_id if 0 <= age <= SESSION_MAX_AGE_S else None


def load_session(db: Database, key_id: str) -> Principal | None:
    """Return who the key `key_id` belongs to, None when it is unknown or revoked."""
    return principal_where(db, ApiKeyRow.id == key_id)


def secret_of(request: Request) -> bytes:
    """Return the server's signing secret (shared by replicas)."""
    return request.app.state.links.secret  # type: ignore[no-any-return]


def is_https(request: Request) -> bool:
    """Tell whether the server's public URL is https (cookies are then Secure)."""
    return str(request.app.state.links.public_url).startswith("https://")


def session_user(request: Request) -> Principal | None:
    """Return the signed-in user of this request, None when there is none."""
    value = request.cookies.get(COOKIE_NAME)
    key_id = read_session_value(secret_of(request), value) if value else None
    return load_session(get_db(request), key_id) if key_id else None


def page_user(request: Request) -> Principal:
    """Dependency of every dashboard route: the signed-in user, else SignInRequired."""
    user = session_user(request)
    if user is None:
        raise SignInRequired
    return user


def set_session_cookie(request: Request, response: Response, key_id: str) -> None:
    """Sign the browser in as the owner of the API key `key_id`."""
    response.set_cookie(
        COOKIE_NAME,
        create_session_value(secret_of(request), key_id),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    """Sign the browser out."""
    response.delete_cookie(
        COOKIE_NAME, httponly=True, samesite="lax", secure=is_https(request), path="/"
    )


SignedIn = Annotated[Principal, Depends(page_user)]


def page_links(request: Request, user: SignedIn) -> Links:
    """Return download links made for the signed-in user."""
    links: Links = request.app.state.links
    return links.as_reader(user.user_id)


PageLinks = Annotated[Links, Depends(page_links)]
