"""Dependencies shared by the routes: database, storage, the caller's identity and rate limits.

Every route declares who may call it: `CurrentUser` (a valid key is required), `OptionalUser`
(anonymous allowed, e.g. public reads), or the `public` marker for the few routes that need no
key (health, signed downloads). tests/integration/test_route_inventory.py enforces it.
"""

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Response
from sqlalchemy import ColumnElement, select

from trainhub.protocol.ids import hash_api_key, is_api_key
from trainhub.protocol.paths import API_KEY_HEADER
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ApiKeyRow, UserRow, utcnow
from trainhub.server.errors import ForbiddenError, NotAuthenticatedError, RateLimitedError
from trainhub.server.ratelimit import RateLimiter
from trainhub.server.settings import Settings
from trainhub.server.storage import Storage

LAST_USED_RESOLUTION = timedelta(minutes=1)
PUBLIC_ENDPOINTS: set[Callable[..., Any]] = set()
F = TypeVar("F", bound=Callable[..., Any])


def public(endpoint: F) -> F:
    """Mark a route as deliberately open to callers without a key."""
    PUBLIC_ENDPOINTS.add(endpoint)
    return endpoint


@dataclass(frozen=True)
class Principal:
    """The user a request acts for."""

    user_id: str
    name: str
    is_admin: bool
    key_id: str


def caller_id(user: Principal | None) -> str | None:
    """Return the id of the calling user, None for an anonymous caller."""
    return user.user_id if user is not None else None


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_db(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


def get_storage(request: Request) -> Storage:
    return request.app.state.storage  # type: ignore[no-any-return]


def presented_key(request: Request) -> str | None:
    """Return the credential sent as x-api-key or Authorization: Bearer, if any."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get(API_KEY_HEADER)


def principal_where(db: Database, condition: ColumnElement[bool]) -> Principal | None:
    """Return who holds the live (unrevoked) key matching `condition`; note its use."""
    with db.read() as session:
        found = session.execute(
            select(ApiKeyRow, UserRow)
            .join(UserRow, UserRow.id == ApiKeyRow.user_id)
            .where(condition, ApiKeyRow.revoked_at.is_(None))
        ).first()
    if found is None:
        return None
    key_row, user = found
    now = utcnow()
    if key_row.last_used_at is None or now - key_row.last_used_at > LAST_USED_RESOLUTION:
        with db.write() as session:
            session.get_one(ApiKeyRow, key_row.id).last_used_at = now
    return Principal(user.id, user.name, user.is_admin, key_row.id)


def lookup_key(db: Database, key: str) -> Principal | None:
    """Return who `key` belongs to, or None when it is unknown or revoked."""
    if not is_api_key(key):
        return None
    return principal_where(db, ApiKeyRow.key_hash == hash_api_key(key))


def _rate_limit(
    request: Request, response: Response, identity: str, anonymous: bool
) -> dict[str, str]:
    """Count one request for `identity`; 429 past the limit. Return the X-RateLimit-* headers."""
    limiter: RateLimiter = request.app.state.rate_limiter
    decision = limiter.hit(identity, anonymous=anonymous)
    if not decision.allowed:
        raise RateLimitedError(
            f"rate limit reached ({decision.limit} requests per window); retry after "
            f"{decision.headers()['Retry-After']} s",
            headers=decision.headers(),
        )
    response.headers.update(decision.headers())
    return decision.headers()


def _client_identity(request: Request) -> str:
    return f"ip:{request.client.host if request.client else 'unknown'}"


def optional_user(request: Request, response: Response) -> Principal | None:
    """Return the caller, None when no key was sent; 401 when a key was sent but is not valid."""
    key = presented_key(request)
    if not key:
        _rate_limit(request, response, _client_identity(request), anonymous=True)
        return None
    principal = lookup_key(get_db(request), key)
    if principal is None:
        # a wrong key counts like an anonymous request, so guessing keys is rate limited too
        headers = _rate_limit(request, response, _client_identity(request), anonymous=True)
        raise NotAuthenticatedError(
            "the API key is not valid or was revoked; create one with `trainhub keys create "
            "--user NAME` or in the dashboard's settings",
            headers=headers,
        )
    # one budget per user, not per key: minting more keys buys no more requests
    _rate_limit(request, response, f"user:{principal.user_id}", anonymous=False)
    return principal


def require_user(principal: Annotated[Principal | None, Depends(optional_user)]) -> Principal:
    """Return the caller; 401 when no key was sent."""
    if principal is None:
        raise NotAuthenticatedError(
            "this request needs an API key: send it as the x-api-key header "
            "(or Authorization: Bearer <key>)"
        )
    return principal


def require_metrics_reader(request: Request) -> None:
    """Allow `Authorization: Bearer <metrics_token>` or an admin's API key; 401 or 403 else."""
    settings = get_settings(request)
    presented = presented_key(request) or ""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if token and hmac.compare_digest(presented.encode(), token.encode()):
        return
    principal = lookup_key(get_db(request), presented) if presented else None
    if principal is None:
        raise NotAuthenticatedError(
            "GET /metrics needs the metrics token (Authorization: Bearer <metrics_token>) or "
            "an admin's API key"
        )
    if not principal.is_admin:
        raise ForbiddenError("only an admin's API key (or the metrics token) reads /metrics")


Db = Annotated[Database, Depends(get_db)]
StorageDep = Annotated[Storage, Depends(get_storage)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CurrentUser = Annotated[Principal, Depends(require_user)]
OptionalUser = Annotated[Principal | None, Depends(optional_user)]
