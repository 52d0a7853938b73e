"""The client's exception tree: every failure a caller of trainhub's client can catch.

```
TrainhubError                 base of everything below (catch this to keep training going)
├── ConfigError               no usable URL or API key could be found
├── HubUnreachable            connection failed or timed out after all retries
└── ApiError                  the server answered with an error (.status, .message)
    ├── NotAuthenticated      401: no key, or the key is unknown or revoked
    ├── PermissionDenied      403: the object is someone else's
    ├── NotFound              404: no such object (or not visible to this key)
    ├── Conflict              409: the object is not in a state that allows this
    └── RateLimited           429: too many requests (.retry_after_s)
```

httpx, pydantic and JSON errors never escape the client: `client/transport.py` translates them into
these classes, chained with `from exc`.
"""

from typing import Any, ClassVar


class TrainhubError(Exception):
    """Base of every error the trainhub client raises."""


class ConfigError(TrainhubError):
    """No usable hub URL or API key: the message lists every place that was searched."""


class HubUnreachable(TrainhubError):
    """The hub could not be reached (connection refused, reset, timed out) after all retries."""


class ApiError(TrainhubError):
    """The server answered with an error status; `message` is the server's own explanation."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{message} (HTTP {status})")
        self.status = status
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # The subclasses take other constructor arguments; rebuild through the factory.
        return (create_api_error, (self.status, self.message, getattr(self, "retry_after_s", None)))


class _FixedStatusError(ApiError):
    """An ApiError whose class implies its status."""

    STATUS: ClassVar[int]

    def __init__(self, message: str) -> None:
        super().__init__(self.STATUS, message)


class NotAuthenticated(_FixedStatusError):
    """401: the request carried no API key, or one the server does not know (or revoked)."""

    STATUS = 401


class PermissionDenied(_FixedStatusError):
    """403: the key is valid but may not change this object."""

    STATUS = 403


class NotFound(_FixedStatusError):
    """404: the object does not exist, or this key may not see it."""

    STATUS = 404


class Conflict(_FixedStatusError):
    """409: the object's current state does not allow the request."""

    STATUS = 409


class RateLimited(ApiError):
    """429: the server refused the request for now; retry after `retry_after_s` seconds."""

    STATUS: ClassVar[int] = 429

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(self.STATUS, message)
        self.retry_after_s = retry_after_s


_BY_STATUS: dict[int, type[_FixedStatusError]] = {
    cls.STATUS: cls for cls in (NotAuthenticated, PermissionDenied, NotFound, Conflict)
}


def create_api_error(status: int, message: str, retry_after_s: float | None = None) -> ApiError:
    """Return the ApiError subclass that matches `status` (plain ApiError for other statuses)."""
    if status == RateLimited.STATUS:
        return RateLimited(message, retry_after_s)
    fixed = _BY_STATUS.get(status)
    return fixed(message) if fixed is not None else ApiError(status, message)
