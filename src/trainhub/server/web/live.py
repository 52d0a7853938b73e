"""Live updates by server-sent events: read what a page shows again when it changed, send the diff.

A stream first sends everything it watches, then only changes. It learns of changes from its
process's change feed (changefeed.py: Redis pub/sub across replicas, or one database poll per
process), and reads its snapshot again only when a change concerns what it watches, when the feed
asks it to resync, when the snapshot said it changes by time alone (`DUE`: a trainer that goes
quiet turns offline), and at least every REFRESH_S. After each batch of events it sends the id
of the newest change it has seen (`id:`, from the database, so ids compare across replicas); a
browser that reconnects with `Last-Event-ID` gets the snapshot of now, which holds every change
after that id.

A stream ends after `STREAM_LIFETIME_S` (the browser's EventSource reconnects by itself), when the
client leaves, or with a `signed-out` event when its session ends (sign-out and key revocation
are changes of the user; expiry shows at the next refresh). Each open stream holds one of its
user's `max_live_streams_per_user` slots (web/limits.py) until it ends, however it ends.
"""

import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import anyio
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from trainhub.server.changefeed import Change as Change  # the type of a stream's `watches`
from trainhub.server.db.tables import utcnow
from trainhub.server.services.sessions import SessionUser
from trainhub.server.state import request_hub
from trainhub.server.web import limits
from trainhub.server.web.auth import is_session_live

POLL_INTERVAL_S = 1.0  # how often a waiting stream looks whether its client left
REFRESH_S = 15.0
STREAM_LIFETIME_S = 600.0
SLOT_GRACE_S = 60.0  # a slot outlives its stream by this much if its release was lost
KEEPALIVE_S = 15.0
RECONNECT_MS = 1000

# A snapshot maps (event name, key) to the event's JSON data; under DUE, if present, the time
# (an aware datetime) at which it changes by time alone. DUE is not sent.
Snapshot = dict[tuple[str, str], Any]
DUE = ("", "due")
DUE_MARGIN_S = 0.05  # read just after the moment, not just before it
# Tells whether a change of a model (id, owner) concerns the stream.
Watches = Callable[[Change], bool]


def format_event(event: str, data: Any) -> bytes:
    """Return one server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def changes(before: Snapshot, after: Snapshot) -> list[bytes]:
    """Return the events that turn `before` into `after` ("removed" for keys that went away)."""
    events = [
        format_event(name, data)
        for (name, key), data in after.items()
        if before.get((name, key)) != data
    ]
    gone = [key for (name, key) in before if (name, key) not in after]
    events += [format_event("removed", {"id": key}) for key in gone]
    return events


SIGNED_OUT: Snapshot = {("signed-out", "session"): {"location": "/login"}}


def _guarded(request: Request, user: SessionUser, snapshot: Callable[[], Snapshot]) -> Snapshot:
    """Return the snapshot while the session is live, SIGNED_OUT once it has ended.

    A session ends by sign-out, expiry or the revocation of its API key.
    """
    if not is_session_live(request, user.session_id):
        return SIGNED_OUT
    return snapshot()


def _wait_s(due: datetime | None) -> float:
    """Return how long a stream may wait before it reads again with no change to wake it."""
    if due is None:
        return REFRESH_S
    return min(REFRESH_S, max(0.0, (due - utcnow()).total_seconds() + DUE_MARGIN_S))


def _concerns(change: Change, user: SessionUser, watches: Watches) -> bool:
    """Tell whether a stream of `user` that watches `watches` reads its snapshot again."""
    if change.model_id is None:  # a user's sign-in (sign-out, a revoked key), or the workers
        return change.user_id in (None, user.user_id)
    return watches(change)


async def _events(
    request: Request, user: SessionUser, snapshot: Callable[[], Snapshot], watches: Watches
) -> AsyncIterator[bytes]:
    feed = request_hub(request).changes
    subscription = feed.subscribe()  # before the first read: no change falls in between
    try:
        yield f"retry: {RECONNECT_MS}\n\n".encode()
        seen_id = await run_in_threadpool(feed.newest_id)
        started = last_sent = time.monotonic()
        before: Snapshot = {}
        next_read, read = started, True
        while time.monotonic() - started < STREAM_LIFETIME_S:
            if read or time.monotonic() >= next_read:
                after = await run_in_threadpool(_guarded, request, user, snapshot)
                if after is SIGNED_OUT:
                    yield format_event("signed-out", SIGNED_OUT[("signed-out", "session")])
                    return
                next_read = time.monotonic() + _wait_s(after.pop(DUE, None))
                events = changes(before, after)
                if events:
                    for event in events:
                        yield event
                    yield f"id: {seen_id}\n\n".encode()
                    last_sent = time.monotonic()
                before = after
            if time.monotonic() - last_sent > KEEPALIVE_S:
                last_sent = time.monotonic()
                yield b": keep-alive\n\n"
            await subscription.wait(min(POLL_INTERVAL_S, max(0.0, next_read - time.monotonic())))
            if await request.is_disconnected():
                return
            taken, resync = subscription.take()
            seen_id = max([seen_id, *(change.id for change in taken)])
            read = resync or any(_concerns(change, user, watches) for change in taken)
    finally:
        feed.unsubscribe(subscription)


class LiveResponse(StreamingResponse):
    """A stream of events that gives its slot back when the response ends, however it ends."""

    def __init__(self, content: AsyncIterator[bytes], release: Callable[[], None]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # also when the client went away mid-stream
                await run_in_threadpool(self._release)


def event_stream(
    request: Request, user: SessionUser, snapshot: Callable[[], Snapshot], watches: Watches
) -> StreamingResponse:
    """Answer with a stream of the changes of `snapshot()`, read again when `watches` a change.

    The stream takes one of the user's live-stream slots (429 when none is free) and ends with a
    `signed-out` event as soon as its session ends.
    """
    slot = limits.acquire_stream(request, user.user_id, STREAM_LIFETIME_S + SLOT_GRACE_S)
    return LiveResponse(
        _events(request, user, snapshot, watches),
        lambda: limits.release_stream(request, user.user_id, slot),
    )
