"""Who a request acts for: an API key turned into a Principal (the key's user).

The API (x-api-key or Bearer), the dashboard's sign-in and the Platform endpoints all find the
caller here. A key confirmed by the database is trusted for KEY_TTL_S from this process's
`KeyCache`, so a busy trainer costs one lookup a second, not one per request; a revoked key is
refused by every process and replica within that second (each asks its database again).
"""

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from trainhub.protocol.ids import hash_api_key, is_api_key
from trainhub.server.db import users as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import utcnow

LAST_USED_RESOLUTION = timedelta(minutes=1)
KEY_TTL_S = 1.0
MAX_CACHED_KEYS = 10_000


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


class KeyCache:
    """Answers of recent key lookups (a Principal, or None for a refused key), each for `ttl_s`."""

    def __init__(
        self,
        ttl_s: float = KEY_TTL_S,
        max_entries: int = MAX_CACHED_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s, self._max, self._clock = ttl_s, max_entries, clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        # lookups under way, by key: used by the event loop's thread only (deps.find_principal)
        self.lookups: dict[str, asyncio.Future[Principal | None]] = {}

    def get(self, key: str) -> tuple[bool, Principal | None]:
        """Return (found, principal) for a key looked up less than `ttl_s` ago."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self._clock():
                return False, None
            return True, entry[1]

    def put(self, key: str, principal: Principal | None) -> None:
        """Remember the answer of a lookup of `key` for `ttl_s`."""
        with self._lock:
            self._entries[key] = (self._clock() + self._ttl_s, principal)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def forget(self, *, key_id: str | None = None, user_id: str | None = None) -> None:
        """Drop the answers about one key, or every key of one user (after a revocation here)."""
        with self._lock:
            for key, (_, principal) in list(self._entries.items()):
                if (
                    principal is not None
                    and key_id in (None, principal.key_id)
                    and user_id in (None, principal.user_id)
                ):
                    del self._entries[key]


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
