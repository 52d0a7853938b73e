"""Who a request acts for: an API key turned into a Principal (the key's user).

The API (x-api-key or Bearer), the dashboard's sign-in and the Platform endpoints all find the
caller here, so a revoked key is refused everywhere at once.
"""

from dataclasses import dataclass
from datetime import timedelta

from trainhub.protocol.ids import hash_api_key, is_api_key
from trainhub.server.db import users as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class Principal:
    """The user a request acts for, and the key they presented."""

    user_id: str
    name: str
    is_admin: bool
    key_id: str


def caller_id(user: Principal | None) -> str | None:
    """Return the id of the calling user, None for an anonymous caller."""
    return user.user_id if user is not None else None


def lookup_key(db: Database, key: str) -> Principal | None:
    """Return who `key` belongs to, None when it is malformed, unknown or revoked.

    The key's `last_used_at` is noted at most once a minute.
    """
    if not is_api_key(key):
        return None
    with db.read() as session:
        found = queries.find_live_key(session, hash_api_key(key))
    if found is None:
        return None
    key_row, user = found
    now = utcnow()
    if key_row.last_used_at is None or now - key_row.last_used_at > LAST_USED_RESOLUTION:
        with db.write() as session:
            queries.note_key_use(session, key_row.id, now)
    return Principal(user.id, user.name, user.is_admin, key_row.id)
