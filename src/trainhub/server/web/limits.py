"""Per-user bounds of the dashboard: request rates of pages and of chart data, open live streams.

Rates are counted by the server's RateLimiter (the `limits` library; in Redis when `redis_url` is
set, so replicas count together) under `web:<user id>` and `chart:<user id>`. A refusal is a 429
with Retry-After, which web/routing.py renders as a page for a browser and as the JSON ErrorBody
for a script. Live streams hold slots (web/streams.py). The limiters are built from the app's
settings on first use, once per app.
"""

import threading
import weakref
from dataclasses import dataclass

from fastapi import FastAPI, Request

from trainhub.server.errors import RateLimitedError
from trainhub.server.ratelimit import RateLimiter
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state
from trainhub.server.web.streams import StreamSlots, create_slots

STREAM_RETRY_AFTER_S = 30
_build_lock = threading.Lock()
_built: "weakref.WeakKeyDictionary[FastAPI, WebLimits]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class WebLimits:
    """The dashboard's limiters of one app."""

    pages: RateLimiter
    charts: RateLimiter
    streams: StreamSlots


def create_limits(settings: Settings) -> WebLimits:
    """Build the dashboard's limiters from `settings`."""
    storage = settings.redis_url or "memory://"
    return WebLimits(
        # RateLimiter keeps a second spec for anonymous callers; the dashboard has none
        pages=RateLimiter(settings.web_rate_limit, settings.web_rate_limit, storage),
        charts=RateLimiter(settings.web_chart_rate_limit, settings.web_chart_rate_limit, storage),
        streams=create_slots(settings.max_live_streams_per_user, settings.redis_url),
    )


def limits_of(app: FastAPI) -> WebLimits:
    """Return the dashboard's limiters of `app`, built on first use."""
    limits = _built.get(app)
    if limits is None:
        with _build_lock:
            limits = _built.get(app)
            if limits is None:
                limits = _built[app] = create_limits(hub_state(app).settings)
    return limits


def _hit(limiter: RateLimiter, identity: str, what: str) -> None:
    decision = limiter.hit(identity, anonymous=False)
    if not decision.allowed:
        headers = decision.headers()
        raise RateLimitedError(
            f"too many {what} ({decision.limit} per window for your account); "
            f"wait {headers['Retry-After']} s and try again",
            headers=headers,
        )


def check_page_rate(request: Request, user_id: str) -> None:
    """Count one dashboard request of the user; 429 past `web_rate_limit`."""
    _hit(limits_of(request.app).pages, f"web:{user_id}", "dashboard requests")


def check_chart_rate(request: Request, user_id: str) -> None:
    """Count one chart-data request of the user; 429 past `web_chart_rate_limit`."""
    _hit(limits_of(request.app).charts, f"chart:{user_id}", "chart data requests")


def acquire_stream(request: Request, user_id: str, lifetime_s: float) -> str:
    """Take one of the user's live-stream slots; 429 when `max_live_streams_per_user` are open."""
    slots = limits_of(request.app).streams
    slot = slots.acquire(user_id, lifetime_s)
    if slot is None:
        raise RateLimitedError(
            f"{slots.limit} live pages are open for your account already; close one and reload "
            "this page",
            headers={"Retry-After": str(STREAM_RETRY_AFTER_S)},
        )
    return slot


def release_stream(request: Request, user_id: str, slot: str) -> None:
    """Give a live-stream slot back."""
    limits_of(request.app).streams.release(user_id, slot)
