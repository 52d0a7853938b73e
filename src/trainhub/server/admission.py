"""Admission control: beyond capacity, answer 503 with Retry-After at once instead of queueing.

A hub that takes every request it is sent queues them when it is overloaded: in the thread
pool, in the database pool, in the event loop. Every answer then comes late, clients time out
and send again, and the queue grows. `Admission` keeps at most `max_in_flight` requests of one
process inside the app; a request that finds them all busy waits at most `wait_s` for one to
end, then gets `503` with `Retry-After: 1` and a JSON message. Every client of the hub retries
a 503 (docs/client.md, "Retries done right"), and a retried upload merges into what was stored, so
refusing loses nothing and the answers that are given stay fast.

Not counted: `/healthz` and `/metrics` (monitoring must see an overloaded hub) and the
dashboard's live streams (GET `.../events`), which stay open for minutes and have a limit of
their own (web/limits.py).
"""

import asyncio
from collections import deque
from contextlib import suppress

from starlette.types import ASGIApp, Receive, Scope, Send

from trainhub.protocol import paths

RETRY_AFTER_S = 1
EXEMPT_PATHS = frozenset({paths.HEALTH, "/metrics"})


class Admission:
    """ASGI middleware: at most `max_in_flight` requests at once; the rest wait `wait_s`, or 503."""

    def __init__(self, app: ASGIApp, *, max_in_flight: int, wait_s: float) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.wait_s = wait_s
        self.in_flight = 0
        self.refused = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _exempt(scope):
            await self.app(scope, receive, send)
            return
        if not await self._admit():
            self.refused += 1
            await _refuse(send, self.max_in_flight)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()

    async def _admit(self) -> bool:
        """Take a slot, waiting at most `wait_s` for one; False when none came free."""
        if self.in_flight < self.max_in_flight and not self._waiters:
            self.in_flight += 1
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(waiter, self.wait_s)
        except TimeoutError:
            # the slot may have been handed over just as the wait ran out: then it is ours
            if waiter.done() and not waiter.cancelled():
                return True
            with suppress(ValueError):  # not there when a release skipped it already
                self._waiters.remove(waiter)
            return False
        return True

    def _release(self) -> None:
        """Hand the slot to the oldest request still waiting, or give it back."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # in_flight stays: the slot changes hands
                return
        self.in_flight -= 1


def _exempt(scope: Scope) -> bool:
    path: str = scope["path"]
    return path in EXEMPT_PATHS or (scope["method"] == "GET" and path.endswith("/events"))


async def _refuse(send: Send, max_in_flight: int) -> None:
    body = (
        b'{"success":false,"message":"the hub is busy (%d requests in progress); '
        b'try again in %d s"}' % (max_in_flight, RETRY_AFTER_S)
    )
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_S).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
