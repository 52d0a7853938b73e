"""client/retry.py (what to retry, how long to wait, what to say) and the client error tree."""

import json
import pickle
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from trainhub.client.errors import (
    ApiError,
    Conflict,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    TrainhubError,
    create_api_error,
)
from trainhub.client.retry import (
    backoff_delay_s,
    failure_message,
    is_retryable_status,
    retry_after_s,
)

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)


class Highest(random.Random):
    """An rng whose uniform() always returns the top of the range."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_are_retryable(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 400, 401, 403, 404, 409, 413, 415, 416, 422, 501])
def test_other_statuses_are_not_retryable(status: int) -> None:
    assert not is_retryable_status(status)


def test_backoff_doubles_up_to_the_cap() -> None:
    top = Highest()
    assert [backoff_delay_s(n, rng=top) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_delay_s(3, base_s=0.5, cap_s=3.0, rng=top) == 3.0


def test_backoff_uses_full_jitter_between_zero_and_the_ceiling() -> None:
    rng = random.Random(42)
    delays = [backoff_delay_s(4, rng=rng) for _ in range(500)]
    assert all(0.0 <= d <= 16.0 for d in delays)
    assert min(delays) < 2.0 and max(delays) > 14.0  # spread over the range, not clustered


def test_backoff_survives_huge_attempt_numbers_and_refuses_negative_ones() -> None:
    assert backoff_delay_s(10_000, rng=Highest()) == 60.0
    with pytest.raises(ValueError, match="attempt"):
        backoff_delay_s(-1, rng=random.Random())


@pytest.mark.parametrize(
    ("value", "expected"),
    [("5", 5.0), ("0", 0.0), (" 12 ", 12.0), ("1.5", 1.5), ("-3", 0.0), ("soon", None), ("", None)],
)
def test_retry_after_in_seconds(value: str, expected: float | None) -> None:
    assert retry_after_s({"Retry-After": value}, now=NOW) == expected


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=90), usegmt=True)
    assert retry_after_s({"Retry-After": later}, now=NOW) == 90.0
    earlier = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert retry_after_s({"Retry-After": earlier}, now=NOW) == 0.0


def test_retry_after_is_found_whatever_the_case_of_the_header_name() -> None:
    assert retry_after_s({"retry-after": "3"}) == 3.0
    assert retry_after_s(httpx.Headers({"RETRY-AFTER": "4"})) == 4.0
    assert retry_after_s({}) is None
    assert retry_after_s({"Retry-After": "nan"}) is None


def test_a_429_message_comes_from_the_rate_limit_headers() -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "50", "Retry-After": "7"}
    body = json.dumps({"success": False, "message": "ignored"}).encode()
    assert (
        failure_message(429, headers, body)
        == "rate limit reached (0 of 50 requests left); retry in 7 s"
    )


def test_a_429_without_headers_still_gets_a_message() -> None:
    assert failure_message(429, {}, b"") == "rate limit reached; retry a little later"
    assert failure_message(429, {"X-RateLimit-Limit": "9"}, b"") == (
        "rate limit reached (0 of 9 requests left); retry a little later"
    )
    assert failure_message(429, {"Retry-After": "0.2"}, b"") == "rate limit reached; retry in 1 s"


def test_other_failures_use_the_servers_json_message() -> None:
    body = json.dumps({"success": False, "message": "model 'x' not found; check the id"})
    assert failure_message(404, {}, body.encode()) == "model 'x' not found; check the id"


def test_json_without_a_message_names_the_status() -> None:
    assert failure_message(500, {}, b'{"detail": "x"}') == (
        "the server answered HTTP 500 Internal Server Error without an error message"
    )
    assert "HTTP 404 Not Found" in failure_message(404, {}, b"[1, 2]")


def test_a_non_json_body_names_the_status_and_quotes_the_start() -> None:
    page = b"<html>\n  <h1>502 Bad Gateway</h1>\n" + b"x" * 1000 + b"</html>"
    message = failure_message(502, {}, page)
    assert message.startswith(
        "the server answered HTTP 502 Bad Gateway with a body that is not JSON"
    )
    assert "'<html> <h1>502 Bad Gateway</h1>" in message and "..." in message
    assert len(message) < 400
    assert "an empty body" in failure_message(503, {}, b"")
    assert "HTTP 599 with" in failure_message(599, {}, b"\xff\xfe")


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, NotAuthenticated),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (429, RateLimited),
        (400, ApiError),
        (503, ApiError),
    ],
)
def test_each_status_maps_to_its_error_class(status: int, kind: type[ApiError]) -> None:
    error = create_api_error(status, "what went wrong")
    assert type(error) is kind and isinstance(error, TrainhubError)
    assert (error.status, error.message) == (status, "what went wrong")
    assert str(error) == f"what went wrong (HTTP {status})"


def test_rate_limited_carries_its_wait_and_errors_survive_pickling() -> None:
    error = create_api_error(429, "slow down", 7.0)
    assert isinstance(error, RateLimited) and error.retry_after_s == 7.0
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimited and copy.retry_after_s == 7.0 and copy.message == "slow down"
    found = pickle.loads(pickle.dumps(NotFound("gone")))
    assert type(found) is NotFound and found.status == 404
