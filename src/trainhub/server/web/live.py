"""Live updates by server-sent events: poll the database about once a second, send what changed.

Polling the database (not an in-process bus) keeps every replica's pages right without Redis.
A stream first sends everything it watches, then only changes; it ends after
`STREAM_LIFETIME_S` (the browser's EventSource reconnects by itself), when the client leaves, or
with a `signed-out` event when its session ends. Each open stream holds one of its user's
`max_live_streams_per_user` slots (web/limits.py) until it ends, however it ends.
"""

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from trainhub.server.services.sessions import SessionUser
from trainhub.server.web import limits
from trainhub.server.web.auth import is_session_live

POLL_INTERVAL_S = 1.0
STREAM_LIFETIME_S = 600.0
SLOT_GRACE_S = 60.0  # a slot outlives its stream by this much if its release was lost
KEEPALIVE_S = 15.0
RECONNECT_MS = 1000

# A snapshot maps (event name, key) to the event's JSON data.
Snapshot = dict[tuple[str, str], Any]


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


async def _events(
    request: Request, user: SessionUser, snapshot: Callable[[], Snapshot]
) -> AsyncIterator[bytes]:
    yield f"retry: {RECONNECT_MS}\n\n".encode()
    started = last_sent = time.monotonic()
    before: Snapshot = {}
    while time.monotonic() - started < STREAM_LIFETIME_S:
        after = await run_in_threadpool(_guarded, request, user, snapshot)
        if after is SIGNED_OUT:
            yield format_event("signed-out", SIGNED_OUT[("signed-out", "session")])
            return
        for event in changes(before, after):
            last_sent = time.monotonic()
            yield event
        before = after
        if time.monotonic() - last_sent > KEEPALIVE_S:
            last_sent = time.monotonic()
            yield b": keep-alive\n\n"
        await anyio.sleep(POLL_INTERVAL_S)
        if await request.is_disconnected():
            return


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
    request: Request, user: SessionUser, snapshot: Callable[[], Snapshot]
) -> StreamingResponse:
    """Answer with a stream of the changes of `snapshot()`, polled every POLL_INTERVAL_S.

    The stream takes one of the user's live-stream slots (429 when none is free) and ends with a
    `signed-out` event as soon as its session ends.
    """
    slot = limits.acquire_stream(request, user.user_id, STREAM_LIFETIME_S + SLOT_GRACE_S)
    return LiveResponse(
        _events(request, user, snapshot),
        lambda: limits.release_stream(request, user.user_id, slot),
    )
