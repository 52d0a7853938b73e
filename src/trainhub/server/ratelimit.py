"""Rate limits per user (per client address when anonymous): fixed windows such as "50/second".

Counters live in this process's memory by default, in a file every worker process maps when the
server runs several (`--workers N`, sharedcounts.py), and in Redis when `redis_url` is set, so
replicas count together (the `limits` library's fixed-window strategy there); while that Redis
does not answer, each process counts in its memory and tries Redis again every REDIS_RETRY_S
(docs/deployment.md, "Redis"). Every answer carries
X-RateLimit-*; a 429 also carries Retry-After, because the stock client indexes all four headers
without defaults (docs/protocol/hub-v1.md §2.3).

The memory counters are a dict behind a lock: a hit costs a few microseconds and starts no timer
thread (the `limits` memory storage starts one per key and window), which matters on the hot path
of metrics and heartbeats.
"""

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from trainhub.server.sharedcounts import SharedWindows

logger = logging.getLogger(__name__)
MAX_MEMORY_KEYS = 100_000  # identities counted at once before expired windows are swept
REDIS_RETRY_S = 2.0  # while Redis fails, counters stay in memory this long before it is tried


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one hit: allowed or not, and the headers to send."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # unix time when the window resets

    def headers(self) -> dict[str, str]:
        """Return the X-RateLimit-* headers (and Retry-After when refused)."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_at - time.time())))
        return headers


class MemoryWindows:
    """Fixed-window counters in this process: each window opens at its identity's first hit."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, int], tuple[float, int]] = {}  # -> (ends at, count)

    def hit(self, identity: str, index: int, item: RateLimitItem) -> RateDecision:
        """Count one hit of `identity` against `item` (the `index`th limit of its spec)."""
        now = self._clock()
        key = (identity, index)
        with self._lock:
            ends_at, count = self._windows.get(key, (0.0, 0))
            if now >= ends_at:
                if len(self._windows) >= MAX_MEMORY_KEYS:
                    self._sweep(now)
                ends_at, count = now + item.get_expiry(), 0
            allowed = count < item.amount
            if allowed:
                count += 1
                self._windows[key] = (ends_at, count)
        return RateDecision(allowed, item.amount, max(0, item.amount - count), ends_at)

    def _sweep(self, now: float) -> None:
        for key in [k for k, (ends_at, _) in self._windows.items() if ends_at <= now]:
            del self._windows[key]


class FileWindows:
    """Fixed-window counters shared by the worker processes of one server (sharedcounts.py)."""

    def __init__(self, path: Path) -> None:
        self._shared = SharedWindows(path)

    def hit(self, identity: str, index: int, item: RateLimitItem) -> RateDecision:
        allowed, count, ends_at = self._shared.hit(identity, index, item)
        return RateDecision(allowed, item.amount, max(0, item.amount - count), ends_at)


class RedisWindows:
    """Fixed-window counters in Redis, shared by every replica (the `limits` library)."""

    def __init__(self, url: str) -> None:
        # a failure shows at once (no retries with back-off): the counters fall back to memory
        fail_fast: dict[str, Any] = {"retry": Retry(NoBackoff(), 0), "socket_timeout": 2.0}
        redis_url = urlsplit(url).scheme in ("redis", "rediss", "unix")
        self._storage = storage_from_string(url, **(fail_fast if redis_url else {}))
        self._limiter = FixedWindowRateLimiter(self._storage)
        self._url = url
        self._local = MemoryWindows()  # while Redis does not answer
        self._local_until = 0.0

    def check(self) -> None:
        """Raise ValueError, naming the place (no password), when Redis does not answer."""
        if not self._storage.check():
            parts = urlsplit(self._url)
            shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
            raise ValueError(
                f"Redis at {shown} does not answer (TRAINHUB_REDIS_URL); start it, or unset "
                "redis_url to keep the counters in this process"
            )

    def hit(self, identity: str, index: int, item: RateLimitItem) -> RateDecision:
        """Count in Redis; while it fails, in this process (each replica then counts its own)."""
        if time.monotonic() < self._local_until:
            return self._local.hit(identity, index, item)
        try:
            allowed = self._limiter.hit(item, identity)
            stats = self._limiter.get_window_stats(item, identity)
        except (redis.RedisError, OSError):
            if self._local_until == 0.0 or time.monotonic() - self._local_until > REDIS_RETRY_S:
                logger.warning("Redis is unreachable: rate limits are counted per process for now")
            self._local_until = time.monotonic() + REDIS_RETRY_S
            return self._local.hit(identity, index, item)
        return RateDecision(allowed, item.amount, max(0, stats.remaining), stats.reset_time)


class RateLimiter:
    """Limits such as "50/second;1200/minute", checked together; the tightest is reported."""

    def __init__(
        self,
        spec: str,
        anonymous_spec: str,
        storage_url: str = "memory://",
        shared_file: Path | None = None,
    ) -> None:
        """Count in Redis when `storage_url` names it, else in `shared_file` (several worker
        processes), else in this process's memory."""
        self._items = parse_many(spec)
        self._anonymous_items = parse_many(anonymous_spec)
        self._windows: MemoryWindows | FileWindows | RedisWindows
        if not storage_url.startswith("memory://"):
            self._windows = RedisWindows(storage_url)
        elif shared_file is not None:
            self._windows = FileWindows(shared_file)
        else:
            self._windows = MemoryWindows()

    def check(self) -> None:
        """Raise ValueError when the shared counters' Redis does not answer (memory: never)."""
        if isinstance(self._windows, RedisWindows):
            self._windows.check()

    def hit(self, identity: str, *, anonymous: bool) -> RateDecision:
        """Count one request for `identity` against every limit; report the tightest."""
        items = self._anonymous_items if anonymous else self._items
        tightest: RateDecision | None = None
        for index, item in enumerate(items):
            decision = self._windows.hit(identity, index, item)
            if not decision.allowed:
                return decision
            if tightest is None or decision.remaining < tightest.remaining:
                tightest = decision
        if tightest is None:  # parse_many never returns an empty list
            raise ValueError("a rate limit spec must name at least one limit")
        return tightest
