"""Rate limits: the tightest window decides, and every answer can carry the four headers."""

from trainhub.server.ratelimit import RateLimiter


def test_requests_past_the_limit_are_refused_with_retry_after() -> None:
    limiter = RateLimiter("3/minute", "1/minute")
    decisions = [limiter.hit("key:a", anonymous=False) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions[:3]] == [2, 1, 0]
    headers = decisions[-1].headers()
    assert set(headers) == {
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "Retry-After",
    }
    assert headers["X-RateLimit-Limit"] == "3" and 1 <= int(headers["Retry-After"]) <= 60


def test_identities_are_counted_apart_and_anonymous_callers_have_their_own_limit() -> None:
    limiter = RateLimiter("2/minute", "1/minute")
    assert limiter.hit("key:a", anonymous=False).allowed
    assert limiter.hit("key:b", anonymous=False).allowed
    assert limiter.hit("ip:1.2.3.4", anonymous=True).allowed
    assert not limiter.hit("ip:1.2.3.4", anonymous=True).allowed


def test_the_tightest_of_several_limits_is_reported() -> None:
    limiter = RateLimiter("2/second;100/minute", "1/second")
    first = limiter.hit("key:a", anonymous=False)
    assert first.limit == 2 and first.remaining == 1
    limiter.hit("key:a", anonymous=False)
    assert not limiter.hit("key:a", anonymous=False).allowed
