"""Live updates across replicas: a change made through one hub reaches a page open on another.

Two create_app() hubs share one database, as two replicas do; their live streams are served by
real uvicorn servers (the in-process TestClient reads a whole response before it returns). The
change feed is the database (the embedded default) or Redis: the machine's (on a Redis database
number of this test worker's own, whose channel no other worker uses) or, for the outage tests,
a private `redis-server` that the test stops and starts again (docs/dashboard.md, "Live updates").
"""

import asyncio
import json
import os
import queue
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import Users, create_model, create_users, epoch_metrics, ok
from tests.security.test_web_limits import served
from tests.servers import free_port
from tests.testclient import TestClient
from tests.world import sign_in
from trainhub.server import changefeed
from trainhub.server.app import create_app
from trainhub.server.db import changes
from trainhub.server.db.tables import LiveChangeRow, utcnow
from trainhub.server.state import hub_state
from trainhub.server.web import csrf, live

# a Redis database number of this xdist worker's own: the channel is named after it
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
SHARED_REDIS = f"redis://127.0.0.1:6379/{12 + WORKER % 4}"
EVENTS = {"accept": "text/event-stream"}
ARRIVAL_S = 1.0  # the goal: a change shows on the other replica within about a second
ARRIVAL_DEADLINE_S = 5.0  # what the test allows on a loaded 2-core machine
OUTAGE_DEADLINE_S = 15.0


@dataclass
class Event:
    name: str
    data: Any
    at: float


@dataclass
class Stream:
    """A live stream read in a thread: its events as they arrive, and the ids it was sent."""

    answer: httpx.Response
    events: "queue.Queue[Event]" = field(default_factory=queue.Queue)
    ids: list[int] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)

    def read(self) -> None:
        name, data = "", ""
        try:
            for line in self.answer.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = line.removeprefix("data: ")
                elif line.startswith("id: "):
                    self.ids.append(int(line.removeprefix("id: ")))
                elif not line and name:
                    self.events.put(Event(name, json.loads(data), time.monotonic()))
                    name, data = "", ""
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            self.ended.set()

    def wait_for(self, name: str, deadline_s: float, **expected: Any) -> Event:
        """Return the first event `name` whose data holds `expected`, within `deadline_s`."""
        deadline = time.monotonic() + deadline_s
        while True:
            try:
                event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {name} event with {expected} in {deadline_s} s") from None
            if event.name == name and all(event.data.get(k) == v for k, v in expected.items()):
                return event

    def last_id(self, deadline_s: float) -> int:
        """Return the last event id the stream was sent, waiting for one up to `deadline_s`."""
        deadline = time.monotonic() + deadline_s
        while not self.ids:
            assert time.monotonic() < deadline, "the stream sent no event id"
            time.sleep(0.02)
        return self.ids[-1]

    def close(self) -> None:
        self.answer.close()  # the server notices within a second; its reader thread ends then


@dataclass
class Replicas:
    a: FastAPI
    b: FastAPI
    users: Users
    api_a: TestClient  # alice's API key, through hub A
    served_b: httpx.Client  # hub B behind a real server
    cookie_b: dict[str, str]  # alice signed in on hub B
    csrf_b: str  # that session's CSRF token
    stack: ExitStack

    def open(self, path: str, headers: dict[str, str] | None = None) -> Stream:
        """Open a live stream on hub B, read in a thread until the test ends."""
        answer = self.stack.enter_context(
            self.served_b.stream(
                "GET", path, headers={**EVENTS, **self.cookie_b, **(headers or {})}
            )
        )
        assert answer.status_code == 200
        stream = Stream(answer)
        threading.Thread(target=stream.read, daemon=True).start()
        return stream

    def record_epoch(self, model_id: str, epoch: int) -> float:
        """Record an epoch through hub A; return when its upload was answered."""
        metrics = {"type": "metrics", "metrics": epoch_metrics(epoch)}
        ok(self.api_a.post(f"/v1/models/{model_id}", json=metrics))
        return time.monotonic()


@contextmanager
def replicas(tmp_path: Path, database_url: str, redis_url: str | None) -> Iterator[Replicas]:
    """Two hubs on one database (and Redis, if given); hub B served on a Unix socket."""
    secret = "replicas-share-" + secrets.token_hex(8)  # as TRAINHUB_SECRET_KEY is shared
    with ExitStack() as stack:
        hubs = []
        for name in ("a", "b"):
            settings = make_settings(
                tmp_path / name, database_url, redis_url=redis_url, secret_key=secret
            )
            hub = create_app(settings)
            stack.callback(hub_state(hub).db.dispose)  # stops its change feed first
            hubs.append(hub)
        a, b = hubs
        users = create_users(hub_state(a).db)
        api_a = stack.enter_context(TestClient(a, headers={"x-api-key": users.alice.key}))
        served_b = stack.enter_context(served(b, tmp_path / "b.sock"))
        cookie, token = sign_in(b, users.alice.key)
        yield Replicas(a, b, users, api_a, served_b, {"cookie": cookie}, token, stack)


def shared_redis_url() -> str:
    client = redis.Redis.from_url(SHARED_REDIS)
    client.ping()
    client.close()
    return SHARED_REDIS


@pytest.mark.parametrize("source", ["database", "redis"])
def test_a_change_through_one_replica_reaches_a_page_open_on_the_other(
    tmp_path: Path, database_url: str, source: str
) -> None:
    redis_url = shared_redis_url() if source == "redis" else None
    with replicas(tmp_path, database_url, redis_url) as hubs:
        model_id = create_model(hubs.api_a, config={"epochs": 5})
        stream = hubs.open(f"/models/{model_id}/events")
        stream.wait_for("model", ARRIVAL_DEADLINE_S, id=model_id)
        delays = []
        for epoch in range(3):
            sent = hubs.record_epoch(model_id, epoch)
            event = stream.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=epoch)
            delays.append(event.at - sent)
        # the median, so one late scheduling on a busy machine does not decide it
        assert sorted(delays)[1] < ARRIVAL_S + 0.5, delays
        assert stream.ids == sorted(stream.ids) and stream.ids[0] > 0
        assert hub_state(hubs.b).changes.status() == {"status": "ok", "source": source}


def test_the_list_page_of_the_other_replica_sees_a_new_model(
    tmp_path: Path, database_url: str
) -> None:
    with replicas(tmp_path, database_url, shared_redis_url()) as hubs:
        first = create_model(hubs.api_a, meta={"name": "first"})
        stream = hubs.open(f"/models/events?ids={first}")
        stream.wait_for("list", ARRIVAL_DEADLINE_S, newest=first)
        second = create_model(hubs.api_a, meta={"name": "second"})
        stream.wait_for("list", ARRIVAL_DEADLINE_S, newest=second)


def test_signing_out_through_one_replica_ends_the_page_open_on_the_other(
    tmp_path: Path, database_url: str
) -> None:
    with replicas(tmp_path, database_url, None) as hubs:
        model_id = create_model(hubs.api_a)
        stream = hubs.open(f"/models/{model_id}/events")
        stream.wait_for("model", ARRIVAL_DEADLINE_S, id=model_id)
        opened = time.monotonic()
        with TestClient(hubs.a, headers=hubs.cookie_b) as browser_a:
            answer = browser_a.post(
                "/logout", data={csrf.FIELD: hubs.csrf_b}, follow_redirects=False
            )
        assert answer.status_code == 303
        signed_out = stream.wait_for("signed-out", ARRIVAL_DEADLINE_S)
        # told by the change, not found by the refresh, which comes REFRESH_S after the first read
        assert signed_out.at - opened < live.REFRESH_S / 3
        assert stream.ended.wait(ARRIVAL_DEADLINE_S)


def test_open_pages_share_one_feed_and_read_only_for_their_own_model(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: dict[str, int] = {}
    real_guarded = live._guarded

    def counted(request: Any, *args: Any) -> live.Snapshot:
        path = request.url.path
        reads[path] = reads.get(path, 0) + 1
        return real_guarded(request, *args)

    monkeypatch.setattr(live, "_guarded", counted)
    with replicas(tmp_path, database_url, None) as hubs:
        quiet, busy = create_model(hubs.api_a), create_model(hubs.api_a)
        quiet_streams = [hubs.open(f"/models/{quiet}/events") for _ in range(3)]
        busy_stream = hubs.open(f"/models/{busy}/events")
        for stream in [*quiet_streams, busy_stream]:
            stream.wait_for("model", ARRIVAL_DEADLINE_S)
        feeds = [t for t in threading.enumerate() if t.name == "live-changes"]
        assert len(feeds) == 1  # hub B's: four pages, one source of changes
        before = reads.get(f"/models/{quiet}/events", 0)
        for epoch in range(4):
            hubs.record_epoch(busy, epoch)
            busy_stream.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=epoch)
        # the quiet pages read again only for the feed's resyncs, never for the busy model
        assert reads[f"/models/{quiet}/events"] - before <= 3
        assert reads[f"/models/{busy}/events"] >= 5


def test_a_reconnecting_page_resumes_with_last_event_id(tmp_path: Path, database_url: str) -> None:
    with replicas(tmp_path, database_url, None) as hubs:
        model_id = create_model(hubs.api_a, config={"epochs": 5})
        hubs.record_epoch(model_id, 0)
        first = hubs.open(f"/models/{model_id}/events")
        first.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=0)
        last_id = first.last_id(ARRIVAL_DEADLINE_S)
        first.close()  # the browser lost its connection...
        hubs.record_epoch(model_id, 1)  # ...and missed this
        resumed = hubs.open(f"/models/{model_id}/events", {"Last-Event-ID": str(last_id)})
        resumed.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=1)
        assert resumed.last_id(ARRIVAL_DEADLINE_S) > last_id  # ids go on from the database's


# --- the database as the source ----------------------------------------------------------


def test_the_database_cursor_hands_out_a_change_that_committed_after_a_newer_one(
    app: FastAPI,
) -> None:
    # PostgreSQL takes ids when rows are written, so a transaction that began first may commit
    # its smaller id after a larger one was read; the cursor must still hand it out, once.
    db = hub_state(app).db

    def commit(change_id: int) -> None:
        with db.write() as session:
            session.add(LiveChangeRow(id=change_id, model_id="m", user_id="u", at=utcnow()))

    cursor = changefeed._Cursor(floor=999)
    commit(1001)
    assert [c.id for c in cursor.read(db) or []] == [1001]
    commit(1000)  # taken before 1001, committed after it was read
    assert [c.id for c in cursor.read(db) or []] == [1000]
    assert cursor.read(db) == []  # nothing twice


def test_a_batch_notes_one_change_per_model_in_one_statement_and_announces_them_in_order(
    app: FastAPI,
) -> None:
    db = hub_state(app).db
    announced: list[changes.Change] = []
    db.on_changes = announced.extend
    changed = [("m1", "alice"), ("m2", "bob"), ("m3", "alice")]
    with db.begin() as conn:
        changes.note_many(conn, changed)
        changes.note_many(conn, [])
    assert [(c.model_id, c.user_id) for c in announced] == changed
    ids = [c.id for c in announced]
    assert ids == sorted(ids) and len(set(ids)) == 3
    with db.read() as session:
        stored = changes.after(session, ids[0] - 1, 10)
    assert stored == announced  # the ids announced are the rows written


def test_the_feed_fans_changes_out_and_drops_a_slow_streams_backlog(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changefeed, "QUEUE_LIMIT", 3)
    monkeypatch.setattr(changefeed, "POLL_INTERVAL_S", 0.05)
    db, feed = hub_state(app).db, hub_state(app).changes

    async def scenario() -> tuple[list[int], bool]:
        fast, slow = feed.subscribe(), feed.subscribe()
        try:
            await fast.wait(5.0)  # the thread started: a resync for what went by before it
            assert fast.take() == ([], True)
            seen: list[int] = []
            for number in range(6):
                with db.write() as session:
                    changes.note(session, f"model{number}", "owner")
                while len(seen) < number + 1:
                    await fast.wait(5.0)
                    taken, resync = fast.take()
                    assert not resync
                    seen += [c.id for c in taken]
            return seen, slow.take()[1]
        finally:
            feed.unsubscribe(fast)
            feed.unsubscribe(slow)

    seen, slow_resyncs = asyncio.run(scenario())
    assert seen == sorted(seen) and len(seen) == 6
    assert slow_resyncs  # six changes went by a stream that holds three: it reads again


# --- Redis lost and back -------------------------------------------------------------------


class PrivateRedis:
    """A `redis-server` of this test's own on a free port, stopped and started by the test."""

    def __init__(self, folder: Path) -> None:
        self.port, self.folder = free_port(), folder
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""],
            cwd=self.folder,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def live_health(client: TestClient) -> dict[str, str]:
    answer = client.get("/healthz")
    assert answer.status_code == 200, answer.text  # a load balancer keeps routing
    health: dict[str, str] = answer.json()["data"]["live"]
    return health


def wait_for_health(client: TestClient, expected: dict[str, str], deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while (found := live_health(client)) != expected:
        assert time.monotonic() < deadline, f"healthz says {found}, not {expected}"
        time.sleep(0.1)


def test_pages_keep_updating_while_redis_is_down_and_recover_when_it_is_back(
    tmp_path: Path, database_url: str, private_redis: PrivateRedis
) -> None:
    healthy = {"status": "ok", "source": "redis"}
    degraded = {"status": "degraded", "source": "database"}
    with replicas(tmp_path, database_url, private_redis.url) as hubs:
        model_id = create_model(hubs.api_a, config={"epochs": 9})
        stream = hubs.open(f"/models/{model_id}/events")
        stream.wait_for("model", ARRIVAL_DEADLINE_S, id=model_id)
        browser_b = hubs.stack.enter_context(TestClient(hubs.b))
        assert live_health(hubs.api_a) == healthy == live_health(browser_b)
        hubs.record_epoch(model_id, 0)
        stream.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=0)

        private_redis.stop()
        # hub A has no open page (so no subscriber): it asks Redis; hub B's subscriber noticed
        wait_for_health(hubs.api_a, degraded, OUTAGE_DEADLINE_S)
        wait_for_health(browser_b, degraded, OUTAGE_DEADLINE_S)
        for epoch in (1, 2):  # written through A, which cannot publish them: B reads them
            hubs.record_epoch(model_id, epoch)
            stream.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=epoch)
        opened = hubs.open(f"/models/{model_id}/events")  # slots are counted per process
        opened.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=2)

        private_redis.start()
        wait_for_health(browser_b, healthy, OUTAGE_DEADLINE_S)
        wait_for_health(hubs.api_a, healthy, OUTAGE_DEADLINE_S)
        for epoch in (3, 4):
            hubs.record_epoch(model_id, epoch)
            stream.wait_for("metrics", ARRIVAL_DEADLINE_S, epoch=epoch)
        assert live_health(browser_b) == healthy  # they came through Redis again


def test_a_hub_whose_redis_is_gone_at_start_refuses_to_start(
    tmp_path: Path, database_url: str
) -> None:
    gone = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(ValueError, match=r"Redis at .* does not answer"):
        create_app(make_settings(tmp_path, database_url, redis_url=gone))
