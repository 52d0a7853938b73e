"""Dashboard sign-in: server-side sessions in the database, named by a random cookie.

Signing in starts a session (a `web_sessions` row) and hands the browser a random token whose
sha256 names it; the cookie holds neither the API key nor its id. Every request looks the token
up with one indexed query that also checks the session's expiry, idleness and API key, so
signing out or revoking the key ends the session at once, on every replica (they share the
database). See docs/decisions/0011-server-side-dashboard-sessions.md.
"""

from typing import Annotated

from fastapi import Depends, Request, Response

from trainhub.server.deps import Principal
from trainhub.server.errors import NotAuthenticatedError
from trainhub.server.links import Links
from trainhub.server.services import sessions
from trainhub.server.services.sessions import SessionUser
from trainhub.server.state import request_hub
from trainhub.server.web import limits

COOKIE_NAME = "trainhub_session"
_UNKNOWN = object()


class SignInRequired(NotAuthenticatedError):
    """No valid dashboard session: pages redirect to /login, data endpoints answer 401."""

    def __init__(self) -> None:
        super().__init__("sign in to the dashboard with an API key at /login")


def secret_of(request: Request) -> bytes:
    """Return the server's signing secret (shared by replicas)."""
    return request_hub(request).links.secret


def is_https(request: Request) -> bool:
    """Tell whether the server's public URL is https (cookies are then Secure)."""
    return request_hub(request).links.public_url.startswith("https://")


def is_session_live(request: Request, session_id: str) -> bool:
    """Tell whether the session `session_id` is still live (open event streams ask)."""
    return sessions.is_live(
        request_hub(request).db, session_id, request_hub(request).settings.web_session_idle_s
    )


def session_user(request: Request) -> SessionUser | None:
    """Return the signed-in user of this request, None when there is none (looked up once)."""
    cached = getattr(request.state, "session_user", _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached  # type: ignore[return-value]  # only this function stores it
    token = request.cookies.get(COOKIE_NAME)
    idle_s = request_hub(request).settings.web_session_idle_s
    user = sessions.find_session(request_hub(request).db, token, idle_s) if token else None
    request.state.session_user = user
    return user


def page_user(request: Request) -> SessionUser:
    """Dependency of every dashboard route: the signed-in user (SignInRequired), within limits."""
    user = session_user(request)
    if user is None:
        raise SignInRequired
    limits.check_page_rate(request, user.user_id)
    return user


def start_session(request: Request, response: Response, owner: Principal) -> None:
    """Sign the browser in as `owner`: end the session it had, start a new one, set the cookie.

    A new session at every sign-in means a new cookie and a new CSRF token (no session fixation).
    """
    settings = request_hub(request).settings
    token = sessions.start_session(
        request_hub(request).db,
        owner,
        max_age_s=settings.web_session_max_age_s,
        previous=session_user(request),
    )
    response.set_cookie(
        COOKIE_NAME,
        token,
        max_age=settings.web_session_max_age_s,
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        path="/",
    )


def end_session(request: Request, response: Response, user: SessionUser) -> None:
    """Sign the browser out: end its session in the database and clear the cookie."""
    sessions.end_session(request_hub(request).db, user)
    clear_session_cookie(request, response)


def clear_session_cookie(request: Request, response: Response) -> None:
    """Remove the session cookie from the browser."""
    response.delete_cookie(
        COOKIE_NAME, httponly=True, samesite="lax", secure=is_https(request), path="/"
    )


SignedIn = Annotated[SessionUser, Depends(page_user)]


async def page_links(request: Request, user: SignedIn) -> Links:
    """Return download links made for the signed-in user."""
    links = request_hub(request).links
    return links.as_reader(user.user_id)


PageLinks = Annotated[Links, Depends(page_links)]
