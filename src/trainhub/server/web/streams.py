"""Slots of live event streams: at most N open streams per user, counted per process or in Redis.

A stream takes a slot before it starts and gives it back when it ends, however it ends. Each slot
also has a deadline a little after the longest a stream may run, so a slot whose release was lost
(a replica killed mid-stream) frees itself. With `redis_url` set, the slots of a user live in one
Redis sorted set (member: slot id, score: deadline), so every replica counts the same streams;
while that Redis does not answer, each process counts its own.
"""

import logging
import secrets
import threading
import time
from typing import Protocol
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trainhub.server.changefeed import REDIS_SCHEMES

logger = logging.getLogger(__name__)
KEY_PREFIX = "trainhub:live-streams:"
REDIS_TIMEOUT_S = 5.0
REDIS_RETRY_S = 2.0  # while Redis fails, slots are counted in memory this long before a retry

# KEYS[1]: the user's set. ARGV: now, limit, deadline, slot id, set lifetime in ms.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamSlots(Protocol):
    """Counts the open live streams of each user against one limit."""

    limit: int

    def acquire(self, user_id: str, lifetime_s: float) -> str | None:
        """Take a slot for `lifetime_s` at most; return its id, None when all are taken."""
        ...

    def release(self, user_id: str, slot: str) -> None:
        """Give a slot back (nothing happens if it is gone already)."""
        ...


class MemorySlots:
    """Slots counted in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, float]] = {}  # user id -> slot id -> deadline

    def acquire(self, user_id: str, lifetime_s: float) -> str | None:
        """Take a slot for `lifetime_s` at most; return its id, None when all are taken."""
        now = time.monotonic()
        with self._lock:
            held = self._held.setdefault(user_id, {})
            for slot, deadline in list(held.items()):
                if deadline <= now:
                    del held[slot]
            if len(held) >= self.limit:
                return None
            slot = secrets.token_hex(8)
            held[slot] = now + lifetime_s
            return slot

    def release(self, user_id: str, slot: str) -> None:
        """Give a slot back (nothing happens if it is gone already)."""
        with self._lock:
            held = self._held.get(user_id, {})
            held.pop(slot, None)
            if not held:
                self._held.pop(user_id, None)


class RedisSlots:
    """Slots counted in Redis, shared by every replica that uses the same Redis."""

    def __init__(self, limit: int, url: str) -> None:
        self.limit = limit
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # a failure shows at once: slots fall back to memory
        )
        self._acquire = self._redis.register_script(_ACQUIRE)
        self._local = MemorySlots(limit)  # while Redis does not answer
        self._local_until = 0.0

    def acquire(self, user_id: str, lifetime_s: float) -> str | None:
        """Take a slot for `lifetime_s` at most; return its id, None when all are taken."""
        if time.monotonic() < self._local_until:
            return self._local.acquire(user_id, lifetime_s)
        try:
            return self._acquire_shared(user_id, lifetime_s)
        except redis.RedisError:
            logger.warning("Redis is unreachable: live streams are counted per process for now")
            self._local_until = time.monotonic() + REDIS_RETRY_S
            return self._local.acquire(user_id, lifetime_s)

    def _acquire_shared(self, user_id: str, lifetime_s: float) -> str | None:
        now = time.time()  # replicas compare deadlines: wall-clock time, not monotonic
        slot = secrets.token_hex(8)
        args: list[float | int | str] = [
            now,
            self.limit,
            now + lifetime_s,
            slot,
            int(lifetime_s * 1000) + 1000,
        ]
        taken = self._acquire(keys=[KEY_PREFIX + user_id], args=args)
        return slot if taken == 1 else None

    def release(self, user_id: str, slot: str) -> None:
        """Give a slot back (nothing happens if it is gone already)."""
        self._local.release(user_id, slot)
        try:
            self._redis.zrem(KEY_PREFIX + user_id, slot)
        except redis.RedisError:  # its deadline frees it
            logger.warning("could not give a live-stream slot back to Redis; it expires by itself")


def create_slots(limit: int, redis_url: str | None) -> StreamSlots:
    """Return slots counted in Redis when `redis_url` is given, else in this process."""
    if not redis_url:
        return MemorySlots(limit)
    if urlsplit(redis_url).scheme not in REDIS_SCHEMES:
        logger.warning(
            "live streams are counted per process: %s URLs are used for rate limits only",
            urlsplit(redis_url).scheme,
        )
        return MemorySlots(limit)
    return RedisSlots(limit, redis_url)
