"""Dashboard sessions: start one at sign-in, find the live one a cookie names, end it.

The queries are in db/sessions.py; web/auth.py sets and reads the cookie.
See docs/decisions/0011-server-side-dashboard-sessions.md.
"""

from dataclasses import dataclass
from datetime import timedelta

from trainhub.server.db import changes
from trainhub.server.db import sessions as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import utcnow
from trainhub.server.services.identity import Principal

LAST_SEEN_RESOLUTION_S = 60.0  # how stale `last_seen_at` may get before a request updates it


@dataclass(frozen=True)
class SessionUser(Principal):
    """The signed-in user of a dashboard request, and the session they are signed in with."""

    session_id: str


def find_session(db: Database, token: str, idle_s: int) -> SessionUser | None:
    """Return who the live session named by `token` belongs to; note its use once a minute."""
    now = utcnow()
    with db.read() as session:
        found = queries.find_live_session(session, token, idle_s=idle_s, now=now)
    if found is None:
        return None
    row, user = found
    resolution = timedelta(seconds=min(LAST_SEEN_RESOLUTION_S, idle_s / 4))
    if now - row.last_seen_at > resolution:
        with db.write() as session:
            queries.touch_session(session, row.id, row.key_id, now)
    return SessionUser(user.id, user.name, user.is_admin, row.key_id, row.id)


def is_live(db: Database, session_id: str, idle_s: int) -> bool:
    """Tell whether the session `session_id` is still live (open event streams ask)."""
    with db.read() as session:
        return queries.is_live(session, session_id, idle_s=idle_s, now=utcnow())


def start_session(
    db: Database, owner: Principal, *, max_age_s: int, previous: SessionUser | None
) -> str:
    """Start a session for `owner` (ending `previous`); return the token for the cookie.

    A new session at every sign-in means a new cookie and a new CSRF token (no session fixation).
    """
    now = utcnow()
    with db.write() as session:
        if previous is not None:
            queries.end_session(session, previous.session_id, now)
        queries.delete_expired(session, now)
        _, token = queries.create_session(
            session, owner.user_id, owner.key_id, max_age_s=max_age_s, now=now
        )
    return token


def end_session(db: Database, user: SessionUser) -> None:
    """End the session `user` is signed in with: its cookie signs nobody in from now on."""
    with db.write() as session:
        queries.end_session(session, user.session_id, utcnow())
        changes.note(session, None, user.user_id)  # its open streams end
