"""CSRF protection of the dashboard's forms and scripted writes (docs/security.md §2.4).

Signed-in forms carry a token bound to the session (an HMAC of the session's random id, so it
changes at every sign-in) as the field `csrf_token`; scripts send it as the `X-CSRF-Token`
header. The sign-in form, which comes before any session, uses a double-submit cookie. Requests
whose Origin is another site are refused too.
"""

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

from trainhub.server.errors import ForbiddenError
from trainhub.server.services.sessions import SessionUser
from trainhub.server.state import request_hub
from trainhub.server.web.auth import SignedIn, secret_of

FIELD = "csrf_token"
HEADER = "x-csrf-token"
LOGIN_COOKIE = "trainhub_login_csrf"
URLENCODED = "application/x-www-form-urlencoded"


class CsrfError(ForbiddenError):
    """A write without a valid CSRF token, or from another site."""

    def __init__(self) -> None:
        super().__init__(
            "this form has expired or came from another site; reload the page and try again"
        )


def session_token(secret: bytes, session_id: str) -> str:
    """Return the CSRF token of the dashboard session `session_id`."""
    return hmac.new(secret, f"csrf|{session_id}".encode(), hashlib.sha256).hexdigest()


def create_login_token() -> str:
    """Return a fresh random token for the sign-in form's double-submit cookie."""
    return secrets.token_urlsafe(24)


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def is_same_origin(request: Request) -> bool:
    """Tell whether the request came from this server's pages (or says nothing about it)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    own = {
        _origin_of(request_hub(request).links.public_url),
        f"{request.url.scheme}://{request.headers.get('host', '')}".lower(),
    }
    return origin.lower() in own


def check_token(request: Request, user: SessionUser, presented: str | None) -> None:
    """Raise CsrfError unless `presented` is this session's token and the origin is ours."""
    expected = session_token(secret_of(request), user.session_id)
    if not presented or not hmac.compare_digest(presented, expected):
        raise CsrfError
    if not is_same_origin(request):
        raise CsrfError


async def form_token(request: Request) -> str | None:
    """Return the token a url-encoded form or a script sent (multipart bodies are not read)."""
    header = request.headers.get(HEADER)
    if header:
        return header
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != URLENCODED:
        return None
    value = (await request.form()).get(FIELD)
    return value if isinstance(value, str) else None


async def require_csrf(request: Request, user: SignedIn) -> None:
    """Dependency of every signed-in write: refuse it without this session's CSRF token."""
    check_token(request, user, await form_token(request))


def check_login_token(request: Request, presented: str | None) -> None:
    """Raise CsrfError unless the sign-in form's token matches its cookie."""
    cookie = request.cookies.get(LOGIN_COOKIE)
    if not cookie or not presented or not hmac.compare_digest(cookie, presented):
        raise CsrfError
    if not is_same_origin(request):
        raise CsrfError
