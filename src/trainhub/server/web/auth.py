"""Dashboard sign-in: server-side sessions in the database, named by a random cookie.

Signing in starts a session (a `web_sessions` row) and hands the browser a random token whose
sha256 names it; the cookie holds neither the API key nor its id. Every request looks the token
up with one indexed query that also checks the session's expiry, idleness and API key, so
signing out or revoking the key ends the session at once, on every replica (they share the
database). See docs/decisions/0011-server-side-dashboard-sessions.md.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request, Response

from trainhub.server.db import sessions
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import utcnow
from trainhub.server.deps import Principal, get_db, get_settings
from trainhub.server.errors import NotAuthenticatedError
from trainhub.server.links import Links
from trainhub.server.web import limits

COOKIE_NAME = "trainhub_session"
LAST_SEEN_RESOLUTION_S = 60.0  # how stale `last_seen_at` may get before a request updates it
_UNKNOWN = object()


class SignInRequired(NotAuthenticatedError):
    """No valid dashboard session: pages redirect to /login, data endpoints answer 401."""

    def __init__(self) -> None:
        super().__init__("sign in to the dashboard with an API key at /login")


@dataclass(frozen=True)
class SessionUser(Principal):
    """The signed-in user of a dashboard request, and the session they are signed in with."""

    session_id: str


def secret_of(request: Request) -> bytes:
    """Return the server's signing secret (shared by replicas)."""
    return request.app.state.links.secret  # type: ignore[no-any-return]


def is_https(request: Request) -> bool:
    """Tell whether the server's public URL is https (cookies are then Secure)."""
    return str(request.app.state.links.public_url).startswith("https://")


def load_session(db: Database, token: str, idle_s: int) -> SessionUser | None:
    """Return who the live session named by `token` belongs to; note its use once a minute."""
    now = utcnow()
    with db.read() as session:
        found = sessions.find_live_session(session, token, idle_s=idle_s, now=now)
    if found is None:
        return None
    row, user = found
    resolution = timedelta(seconds=min(LAST_SEEN_RESOLUTION_S, idle_s / 4))
    if now - row.last_seen_at > resolution:
        with db.write() as session:
            sessions.touch_session(session, row.id, row.key_id, now)
    return SessionUser(user.id, user.name, user.is_admin, row.key_id, row.id)


def is_session_live(request: Request, session_id: str) -> bool:
    """Tell whether the session `session_id` is still live (open event streams ask)."""
    idle_s = get_settings(request).web_session_idle_s
    with get_db(request).read() as session:
        return sessions.is_live(session, session_id, idle_s=idle_s, now=utcnow())


def session_user(request: Request) -> SessionUser | None:
    """Return the signed-in user of this request, None when there is none (looked up once)."""
    cached = getattr(request.state, "session_user", _UNKNOWN)
    if cached is not _UNKNOWN:
        return cached  # type: ignore[return-value]  # only this function stores it
    token = request.cookies.get(COOKIE_NAME)
    idle_s = get_settings(request).web_session_idle_s
    user = load_session(get_db(request), token, idle_s) if token else None
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
    settings = get_settings(request)
    now = utcnow()
    previous = session_user(request)
    with get_db(request).write() as session:
        if previous is not None:
            sessions.end_session(session, previous.session_id, now)
        sessions.delete_expired(session, now)
        _, token = sessions.create_session(
            session, owner.user_id, owner.key_id, max_age_s=settings.web_session_max_age_s, now=now
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
    with get_db(request).write() as session:
        sessions.end_session(session, user.session_id, utcnow())
    clear_session_cookie(request, response)


def clear_session_cookie(request: Request, response: Response) -> None:
    """Remove the session cookie from the browser."""
    response.delete_cookie(
        COOKIE_NAME, httponly=True, samesite="lax", secure=is_https(request), path="/"
    )


SignedIn = Annotated[SessionUser, Depends(page_user)]


def page_links(request: Request, user: SignedIn) -> Links:
    """Return download links made for the signed-in user."""
    links: Links = request.app.state.links
    return links.as_reader(user.user_id)


PageLinks = Annotated[Links, Depends(page_links)]
