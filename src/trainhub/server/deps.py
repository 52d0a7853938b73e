"""Dependencies shared by the routes: database, storage, the caller's identity and rate limits.

They are `async def`, even those that do no waiting: FastAPI runs a plain `def` dependency in its
thread pool, and a hop there and back costs more than the work of most of them.

Every route declares who may call it: `CurrentUser` (a valid key is required), `OptionalUser`
(anonymous allowed, e.g. public reads), or the `public` marker for the few routes that need no
key (health, signed downloads). tests/integration/test_route_inventory.py enforces it.
"""

import asyncio
import hmac
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import anyio
from anyio import to_thread
from fastapi import Depends, Request, Response

from trainhub.protocol.paths import API_KEY_HEADER
from trainhub.server.db.engine import Database
from trainhub.server.errors import (
    ForbiddenError,
    NotAuthenticatedError,
    RateLimitedError,
    ServiceUnavailableError,
)
from trainhub.server.services.heartbeats import HeartbeatBoard
from trainhub.server.services.identity import KeyCache, Principal, caller_id, lookup_key
from trainhub.server.settings import Settings
from trainhub.server.state import request_hub
from trainhub.server.storage import Storage

__all__ = ["CurrentUser", "Db", "OptionalUser", "Principal", "caller_id", "public"]

PUBLIC_ENDPOINTS: set[Callable[..., Any]] = set()
F = TypeVar("F", bound=Callable[..., Any])


def public(endpoint: F) -> F:
    """Mark a route as deliberately open to callers without a key."""
    PUBLIC_ENDPOINTS.add(endpoint)
    return endpoint


async def get_settings(request: Request) -> Settings:
    return request_hub(request).settings


async def get_db(request: Request) -> Database:
    return request_hub(request).db


async def get_storage(request: Request) -> Storage:
    return request_hub(request).storage


async def get_heartbeats(request: Request) -> HeartbeatBoard:
    return request_hub(request).heartbeats


async def get_keys(request: Request) -> KeyCache:
    return request_hub(request).keys


def presented_key(request: Request) -> str | None:
    """Return the credential sent as x-api-key or Authorization: Bearer, if any."""
    authorization = request.headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return request.headers.get(API_KEY_HEADER)


def _rate_limit(
    request: Request, response: Response, identity: str, anonymous: bool
) -> dict[str, str]:
    """Count one request for `identity`; 429 past the limit. Return the X-RateLimit-* headers."""
    limiter = request_hub(request).rate_limiter
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


async def find_principal(request: Request, key: str) -> Principal | None:
    """Return who `key` belongs to: from the key cache, else from the database (in a thread).

    Concurrent requests with the same uncached key share one lookup, so a key that expires
    from the cache under load costs one query, not one per request. A database that does not
    answer within `database_wait_s` gets the caller a 503 with Retry-After rather than a wait
    of unknown length (docs/performance.md, "Overload"); the lookup still ends, and its answer
    is cached for the retry.
    """
    hub = request_hub(request)
    cached, principal = hub.keys.get(key)
    if cached:
        return principal
    lookup = hub.keys.lookups.get(key)
    if lookup is None:
        lookup = asyncio.ensure_future(to_thread.run_sync(_lookup_and_cache, hub.db, hub.keys, key))
        hub.keys.lookups[key] = lookup
        lookup.add_done_callback(lambda done: _end_lookup(hub.keys, key, done))
    try:
        with anyio.fail_after(hub.settings.database_wait_s):
            return await asyncio.shield(lookup)
    except TimeoutError:
        raise ServiceUnavailableError(
            f"the database did not answer within {hub.settings.database_wait_s:g} s; "
            "try again in a second",
            headers={"Retry-After": "1"},
        ) from None


def _lookup_and_cache(db: Database, keys: KeyCache, key: str) -> Principal | None:
    found = lookup_key(db, key)
    keys.put(key, found)
    return found


def _end_lookup(keys: KeyCache, key: str, done: "asyncio.Future[Principal | None]") -> None:
    keys.lookups.pop(key, None)
    if not done.cancelled():
        done.exception()  # retrieved: a failure every waiter gave up on is not logged as lost


async def optional_user(request: Request, response: Response) -> Principal | None:
    """Return the caller, None when no key was sent; 401 when a key was sent but is not valid."""
    key = presented_key(request)
    if not key:
        _rate_limit(request, response, _client_identity(request), anonymous=True)
        return None
    principal = await find_principal(request, key)
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


async def require_user(
    principal: Annotated[Principal | None, Depends(optional_user)],
) -> Principal:
    """Return the caller; 401 when no key was sent."""
    if principal is None:
        raise NotAuthenticatedError(
            "this request needs an API key: send it as the x-api-key header "
            "(or Authorization: Bearer <key>)"
        )
    return principal


async def require_metrics_reader(request: Request) -> None:
    """Allow `Authorization: Bearer <metrics_token>` or an admin's API key; 401 or 403 else."""
    settings = request_hub(request).settings
    presented = presented_key(request) or ""
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
    if token and hmac.compare_digest(presented.encode(), token.encode()):
        return
    principal = await find_principal(request, presented) if presented else None
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
Keys = Annotated[KeyCache, Depends(get_keys)]
Heartbeats = Annotated[HeartbeatBoard, Depends(get_heartbeats)]
