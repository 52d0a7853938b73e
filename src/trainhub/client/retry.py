"""When to retry a request, how long to wait first, and what to tell the user when it failed.

Pure functions only: nothing here sleeps, sends or logs. `client/transport.py` runs the retry loop.
"""

import json
import math
import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http import HTTPStatus

# Safe to repeat: the server did not act (408, 429, 503) or a gateway/server hiccup (5xx).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
BODY_EXCERPT_CHARS = 120
# 2**62 already exceeds any sensible cap; a larger exponent would overflow float conversion.
_MAX_EXPONENT = 62


def is_retryable_status(status: int) -> bool:
    """Tell whether a request that got `status` may be sent again (408, 429, 500, 502-504)."""
    return status in RETRYABLE_STATUSES


def backoff_delay_s(
    attempt: int, *, base_s: float = 1.0, cap_s: float = 60.0, rng: random.Random
) -> float:
    """Return seconds to wait before retry number `attempt` (0 = first retry), full jitter.

    The delay is uniform in [0, min(cap_s, base_s * 2**attempt)], so many clients that failed
    together do not come back together.
    """
    if attempt < 0:
        raise ValueError(f"attempt must be 0 or more, got {attempt}")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must not be negative")
    ceiling_s = min(cap_s, base_s * 2 ** min(attempt, _MAX_EXPONENT))
    return rng.uniform(0.0, ceiling_s)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Return a header's value, whatever the case of its name in `headers`."""
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value.strip() if value is not None else None


def retry_after_s(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Return the wait a `Retry-After` header asks for, in seconds (None when absent or invalid).

    The header holds either a number of seconds or an HTTP date; a date in the past means 0.
    `now` (default: the current UTC time) is what an HTTP date is measured from.
    """
    value = _header(headers, "Retry-After")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until(value, now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _seconds_until(http_date: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; email.utils leaves "-0000" naive
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def failure_message(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """Return what to tell the user about a failed request.

    429: built from X-RateLimit-Remaining, X-RateLimit-Limit and Retry-After (each optional).
    Otherwise the `message` of the server's JSON error body, or, when the body is not JSON, a
    text that names the status and quotes the start of the body.
    """
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        return _rate_limit_message(headers)
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _non_json_message(status, body)
    message = parsed.get("message") if isinstance(parsed, dict) else None
    if isinstance(message, str) and message.strip():
        return message.strip()
    return f"the server answered {_status_text(status)} without an error message"


def _rate_limit_message(headers: Mapping[str, str]) -> str:
    remaining, limit = (
        _header(headers, "X-RateLimit-Remaining"),
        _header(headers, "X-RateLimit-Limit"),
    )
    wait_s = retry_after_s(headers)
    quota = f" ({remaining or '0'} of {limit} requests left)" if limit else ""
    when = f"retry in {math.ceil(wait_s)} s" if wait_s is not None else "retry a little later"
    return f"rate limit reached{quota}; {when}"


def _non_json_message(status: int, body: bytes) -> str:
    excerpt = " ".join(body[: BODY_EXCERPT_CHARS * 4].decode("utf-8", "replace").split())
    if len(excerpt) > BODY_EXCERPT_CHARS:
        excerpt = excerpt[:BODY_EXCERPT_CHARS] + "..."
    shown = f": {excerpt!r}" if excerpt else " and an empty body"
    return (
        f"the server answered {_status_text(status)} with a body that is not JSON{shown}; "
        "check that the URL points at a trainhub server (a proxy may have answered instead)"
    )


def _status_text(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"
