"""Rate limits per API key (per client address when anonymous), with the `limits` library.

Counters live in memory by default and in Redis when `redis_url` is set, so replicas share them.
Every answer carries X-RateLimit-*; a 429 also carries Retry-After, because the stock client
indexes all four headers without defaults (docs/protocol/hub-v1.md §2.3).
"""

import math
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter


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


class RateLimiter:
    """Fixed-window limits such as "50/second;1200/minute", checked together."""

    def __init__(self, spec: str, anonymous_spec: str, storage_url: str = "memory://") -> None:
        self._items = parse_many(spec)
        self._anonymous_items = parse_many(anonymous_spec)
        self._storage = storage_from_string(storage_url)
        self._storage_url = storage_url
        self._limiter = FixedWindowRateLimiter(self._storage)

    def check(self) -> None:
        """Raise ValueError, naming the place (no password), when the counters' store is down."""
        if not self._storage.check():
            parts = urlsplit(self._storage_url)
            shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
            raise ValueError(
                f"Redis at {shown} does not answer (TRAINHUB_REDIS_URL); start it, or unset "
                "redis_url to keep the counters in this process"
            )

    def hit(self, identity: str, *, anonymous: bool) -> RateDecision:
        """Count one request for `identity` against every limit; report the tightest."""
        items = self._anonymous_items if anonymous else self._items
        tightest: RateDecision | None = None
        for item in items:
            allowed = self._limiter.hit(item, identity)
            decision = self._decision(item, identity, allowed)
            if not allowed:
                return decision
            if tightest is None or decision.remaining < tightest.remaining:
                tightest = decision
        assert tightest is not None  # parse_many never returns an empty list
        return tightest

    def _decision(self, item: RateLimitItem, identity: str, allowed: bool) -> RateDecision:
        stats = self._limiter.get_window_stats(item, identity)
        return RateDecision(allowed, item.amount, max(0, stats.remaining), stats.reset_time)
