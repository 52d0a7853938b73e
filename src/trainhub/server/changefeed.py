"""The change feed of one process: one source of change signals for all its live streams.

Every operation that changes what a dashboard page shows notes a change (db/changes.py: which
model, whose) in its transaction. With `redis_url` set, each process publishes its changes on a
Redis channel once they committed, and ONE subscriber thread per process hands them to the open
streams; without Redis, or while Redis is down, the same thread reads the changes from the
database about once a second instead. Either way N open pages cost one source, not N polls.

Each stream holds a `Subscription`: a bounded list of the changes it has not looked at yet. A
stream that falls behind (a slow client) loses the list and is told to resync, so memory never
grows; every stream is told to resync whenever the source changes (Redis lost or back), since
changes may have gone by unseen in between. Resyncing means reading the snapshot again.

The thread starts with the first subscription and ends when no stream has been open for
IDLE_EXIT_S; `status()` answers for /healthz either way (docs/dashboard.md, "Live updates").
"""

import asyncio
import contextlib
import json
import logging
import threading
import time
from typing import Literal
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trainhub.server.db import changes as queries
from trainhub.server.db.changes import Change
from trainhub.server.db.engine import Database

__all__ = ["Change", "ChangeFeed", "Subscription"]

logger = logging.getLogger(__name__)
QUEUE_LIMIT = 256  # changes a stream may have waiting; past it, the stream resyncs instead
POLL_INTERVAL_S = 1.0  # how often the database is read when Redis is not the source
COMMIT_GRACE_S = 10.0  # a change id is committed (or rolled back) this long after it was taken
READ_LIMIT = 10_000  # changes read at once; more than that in COMMIT_GRACE_S means resync
REDIS_RETRY_S = 2.0  # how often a lost Redis is tried again
REDIS_TIMEOUT_S = 2.0
PUBLISH_TIMEOUT_S = 0.5  # a write waits at most this long for a Redis that hangs
IDLE_EXIT_S = 5.0
REDIS_SCHEMES = ("redis", "rediss", "unix")
CHANNEL = "trainhub:live-changes:"  # + the Redis database number: pub/sub ignores databases

Source = Literal["redis", "database"]


def channel_for(redis_url: str) -> str:
    """Return the channel of the hub that keeps its Redis data in `redis_url`'s database."""
    database = urlsplit(redis_url).path.strip("/") or "0"
    return CHANNEL + database


class Subscription:
    """The changes one stream has not looked at yet, at most `limit` (then: resync)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = QUEUE_LIMIT) -> None:
        self._loop, self._limit = loop, limit
        self._lock = threading.Lock()
        self._changes: list[Change] = []
        self._resync = False
        self._wake_pending = False
        self._woken = asyncio.Event()
        self.closed = False

    def offer(self, changes: list[Change], *, resync: bool = False) -> None:
        """Add changes for the stream (from any thread); past the limit, ask it to resync."""
        with self._lock:
            if self._resync:
                pass  # the stream reads everything again anyway
            elif resync or len(self._changes) + len(changes) > self._limit:
                self._changes.clear()
                self._resync = True
            else:
                self._changes.extend(changes)
            if self._wake_pending:
                return
            self._wake_pending = True
        try:
            self._loop.call_soon_threadsafe(self._woken.set)
        except RuntimeError:  # its event loop is closed: the stream is gone
            self.closed = True

    async def wait(self, timeout_s: float) -> None:
        """Return when changes arrived, or after `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), timeout_s)

    def take(self) -> tuple[list[Change], bool]:
        """Return the waiting changes and whether the stream must resync, and forget them."""
        with self._lock:
            taken, resync = self._changes, self._resync
            self._changes, self._resync, self._wake_pending = [], False, False
            self._woken.clear()
        return taken, resync


class _Cursor:
    """Reads the changes committed since the last read from the database, none twice.

    Ids are taken when a change is written but become visible when its transaction commits, so
    a smaller id may appear after a larger one. The cursor reads every id above `floor` and
    remembers those it handed out; it moves `floor` only past ids seen COMMIT_GRACE_S ago.
    """

    def __init__(self, floor: int) -> None:
        self.floor = floor
        self._seen: dict[int, float] = {}

    def read(self, db: Database) -> list[Change] | None:
        """Return the changes not read before, None when there were too many (resync)."""
        with db.read() as session:
            found = queries.after(session, self.floor, READ_LIMIT)
        now = time.monotonic()
        if len(found) == READ_LIMIT:
            self.floor, self._seen = found[-1].id, {}
            return None
        fresh = [change for change in found if change.id not in self._seen]
        for change in fresh:
            self._seen[change.id] = now
        settled = [i for i, seen in self._seen.items() if now - seen >= COMMIT_GRACE_S]
        if settled:
            self.floor = max(settled)
            self._seen = {i: seen for i, seen in self._seen.items() if i > self.floor}
        return fresh


class ChangeFeed:
    """The change signals of one process, fanned out to its live streams."""

    def __init__(self, db: Database, redis_url: str | None) -> None:
        self._db = db
        self._redis_url = redis_url if redis_url and _is_redis(redis_url) else None
        self._channel = channel_for(self._redis_url) if self._redis_url else ""
        self._publisher = self._client(PUBLISH_TIMEOUT_S) if self._redis_url else None
        self._publish_after = 0.0  # after a failed publish, none is tried for REDIS_RETRY_S
        self._lock = threading.Lock()
        self._subscribers: set[Subscription] = set()
        self._idle_since = time.monotonic()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.source: Source = "redis" if self._redis_url else "database"
        db.before_dispose.append(self.close)

    def _client(self, timeout_s: float = REDIS_TIMEOUT_S) -> "redis.Redis":
        assert self._redis_url is not None
        return redis.Redis.from_url(
            self._redis_url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=REDIS_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),  # a failure shows at once: the feed has its own retry
        )

    # --- what streams and routes call ---------------------------------------------------------

    def subscribe(self) -> Subscription:
        """Return a new subscription for the stream running in this event loop."""
        subscription = Subscription(asyncio.get_running_loop())
        with self._lock:
            self._subscribers.add(subscription)
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="live-changes", daemon=True)
                self._thread.start()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop handing changes to `subscription`."""
        with self._lock:
            self._subscribers.discard(subscription)
            if not self._subscribers:
                self._idle_since = time.monotonic()

    def newest_id(self) -> int:
        """Return the id of the newest change in the database (0 when none)."""
        with self._db.read() as session:
            return queries.newest_id(session)

    def publish(self, changes: list[Change]) -> None:
        """Tell every process that `changes` committed (Database.on_changes; never raises).

        Without Redis there is nothing to do: the processes read the changes from the database.
        While Redis fails, no publish is tried for REDIS_RETRY_S after each failure.
        """
        if self._publisher is None or time.monotonic() < self._publish_after:
            return
        try:
            self._publisher.publish(self._channel, json.dumps([c.message() for c in changes]))
        except redis.RedisError:
            self._publish_after = time.monotonic() + REDIS_RETRY_S
            logger.warning("could not publish a live change to Redis; pages resync when it is back")

    def status(self) -> dict[str, str]:
        """Return the feed's state for /healthz: ok from Redis or the database, or degraded."""
        if self._redis_url is None:
            return {"status": "ok", "source": "database"}
        with self._lock:
            running = self._thread is not None
        if running:
            up = self.source == "redis"
        else:  # no stream open, so no subscriber to ask: ask Redis
            try:
                up = self._publisher is not None and bool(self._publisher.ping())
            except redis.RedisError:
                up = False
        return (
            {"status": "ok", "source": "redis"}
            if up
            else {"status": "degraded", "source": "database"}
        )

    def close(self) -> None:
        """Stop the thread (it stops by itself IDLE_EXIT_S after the last stream); the database
        calls this before it closes its connections."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=REDIS_TIMEOUT_S + POLL_INTERVAL_S + 1)
        if self._publisher is not None:
            self._publisher.close()  # a later publish connects again

    # --- the thread ---------------------------------------------------------------------------

    def _fan_out(self, changes: list[Change], *, resync: bool = False) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for subscription in subscribers:
            subscription.offer(changes, resync=resync)
            if subscription.closed:
                self.unsubscribe(subscription)

    def _keep_running(self) -> bool:
        """Tell whether the thread goes on; if not, it is forgotten (the next stream starts one)."""
        with self._lock:
            if self._thread is not threading.current_thread():
                return False  # closed, and another thread started since: this one ends
            idle = not self._subscribers and time.monotonic() - self._idle_since > IDLE_EXIT_S
            if self._stop.is_set() or idle:
                self._thread = None
                return False
            return True

    def _run(self) -> None:
        retry_at = 0.0
        cursor: _Cursor | None = None
        failing = False
        while self._keep_running():
            if self._redis_url is not None and time.monotonic() >= retry_at:
                if self._listen():  # Redis was the source for a while: read from now on
                    cursor = None
                retry_at = time.monotonic() + REDIS_RETRY_S
                continue
            try:
                if cursor is None:
                    cursor = _Cursor(self.newest_id())
                    self._fan_out([], resync=True)  # what went by before the cursor
                found = cursor.read(self._db)
            except Exception:
                if not failing:  # once per outage, not once a second
                    logger.warning("could not read the live changes; trying again", exc_info=True)
                failing, cursor = True, None
            else:
                failing = False
                if found is None:
                    self._fan_out([], resync=True)
                elif found:
                    self._fan_out(found)
            self._stop.wait(POLL_INTERVAL_S)

    def _listen(self) -> bool:
        """Hand out the changes published on Redis until it fails or the thread should stop.

        Return whether Redis answered at all (False: it is still down).
        """
        pubsub = self._client().pubsub(ignore_subscribe_messages=True)
        subscribed = False
        try:
            pubsub.subscribe(self._channel)
            subscribed = True
            if self.source != "redis":
                logger.warning("Redis is back: live updates come from Redis again")
            self.source = "redis"
            self._fan_out([], resync=True)  # what went by while this process was not listening
            while self._keep_running():
                message = pubsub.get_message(timeout=POLL_INTERVAL_S)
                if message is not None and message.get("type") == "message":
                    self._fan_out(_parse(message.get("data")))
        except (redis.RedisError, OSError):
            if self.source == "redis":
                logger.warning(
                    "Redis is unreachable: live updates come from the database until it is back"
                )
            self.source = "database"
        finally:
            with contextlib.suppress(redis.RedisError, OSError):
                pubsub.close()
        return subscribed


def _parse(data: object) -> list[Change]:
    """Return the changes of one published message (nothing for a malformed one)."""
    try:
        items = json.loads(data) if isinstance(data, (bytes, str)) else None
    except ValueError:
        return []
    if not isinstance(items, list):
        return []
    found = [Change.from_message(item) for item in items]
    return [change for change in found if change is not None]


def _is_redis(url: str) -> bool:
    return urlsplit(url).scheme in REDIS_SCHEMES
