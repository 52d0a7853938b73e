"""Queries of dashboard sessions (`web_sessions`): start one, find the live one a cookie names, end.

The browser's cookie holds a random token; only its sha256 is stored, so a copy of the table
signs nobody in. A session is live while it is not ended, not past its absolute expiry, not idle
for longer than the idle timeout, and its API key is not revoked; one indexed query checks all of
it. See docs/decisions/0011-server-side-dashboard-sessions.md.
"""

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.orm import Session

from trainhub.protocol.ids import create_id
from trainhub.server.db.tables import ApiKeyRow, UserRow, WebSessionRow

TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the sha256 hex digest under which a session token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_token(value: str) -> bool:
    """Tell whether `value` is spelled like a session token (anything else is not looked up)."""
    return bool(_TOKEN_RE.match(value))


def create_session(
    session: Session, user_id: str, key_id: str, *, max_age_s: int, now: datetime
) -> tuple[WebSessionRow, str]:
    """Start a session of `key_id`; return its row and the token for the cookie (never stored)."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    row = WebSessionRow(
        id=create_id(),
        token_hash=hash_token(token),
        user_id=user_id,
        key_id=key_id,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=max_age_s),
    )
    session.add(row)
    session.flush()
    return row, token


def _live(now: datetime, idle_s: int) -> list[ColumnElement[bool]]:
    return [
        WebSessionRow.ended_at.is_(None),
        WebSessionRow.expires_at > now,
        WebSessionRow.last_seen_at > now - timedelta(seconds=idle_s),
        ApiKeyRow.revoked_at.is_(None),
    ]


def find_live_session(
    session: Session, token: str, *, idle_s: int, now: datetime
) -> tuple[WebSessionRow, UserRow] | None:
    """Return the live session the cookie token names, with its user; None when there is none."""
    if not is_token(token):
        return None
    found = session.execute(
        select(WebSessionRow, UserRow)
        .join(ApiKeyRow, ApiKeyRow.id == WebSessionRow.key_id)
        .join(UserRow, UserRow.id == WebSessionRow.user_id)
        .where(WebSessionRow.token_hash == hash_token(token), *_live(now, idle_s))
    ).first()
    return None if found is None else (found[0], found[1])


def is_live(session: Session, session_id: str, *, idle_s: int, now: datetime) -> bool:
    """Tell whether the session `session_id` is still live (open event streams ask each poll)."""
    found = session.scalar(
        select(WebSessionRow.id)
        .join(ApiKeyRow, ApiKeyRow.id == WebSessionRow.key_id)
        .where(WebSessionRow.id == session_id, *_live(now, idle_s))
    )
    return found is not None


def touch_session(session: Session, session_id: str, key_id: str, now: datetime) -> None:
    """Note that the session (and so its API key) was used at `now`."""
    session.execute(
        update(WebSessionRow).where(WebSessionRow.id == session_id).values(last_seen_at=now)
    )
    session.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now))


def end_session(session: Session, session_id: str, now: datetime) -> None:
    """End a session (sign-out): its cookie signs nobody in from now on."""
    session.execute(
        update(WebSessionRow)
        .where(WebSessionRow.id == session_id, WebSessionRow.ended_at.is_(None))
        .values(ended_at=now)
    )


def delete_expired(session: Session, now: datetime) -> None:
    """Delete the sessions past their absolute expiry (ended ones stay until then)."""
    session.execute(delete(WebSessionRow).where(WebSessionRow.expires_at <= now))
