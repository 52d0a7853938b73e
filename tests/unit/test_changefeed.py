"""The fan-out of the change feed: bounded per-stream queues, slow streams resync, wake-ups.

A Subscription is what one live stream holds; the feed's thread offers it changes from another
thread, and the stream takes them in its event loop (changefeed.py).
"""

import asyncio
import json
import threading
import time

from trainhub.server.changefeed import Subscription, _parse, channel_for
from trainhub.server.db.changes import Change


def change(number: int, model: str | None = "m", user: str | None = "u") -> Change:
    return Change(number, model, user)


def test_a_stream_takes_the_changes_offered_in_order_and_then_none() -> None:
    async def scenario() -> None:
        subscription = Subscription(asyncio.get_running_loop(), limit=10)
        subscription.offer([change(1), change(2)])
        subscription.offer([change(3)])
        assert subscription.take() == ([change(1), change(2), change(3)], False)
        assert subscription.take() == ([], False)

    asyncio.run(scenario())


def test_a_slow_stream_loses_its_backlog_and_resyncs_instead_of_growing() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        slow, fast = Subscription(loop, limit=5), Subscription(loop, limit=5)
        for number in range(1, 1001):
            slow.offer([change(number)])
            fast.offer([change(number)])
            if number % 4 == 0:  # the fast stream keeps up, the slow one never takes
                taken, resync = fast.take()
                assert [c.id for c in taken] == list(range(number - 3, number + 1))
                assert not resync
            assert len(slow._changes) <= 5  # memory stays bounded whatever is offered
        assert slow.take() == ([], True)  # it reads its snapshot again
        slow.offer([change(1001)])
        assert slow.take() == ([change(1001)], False)  # and follows changes from there

    asyncio.run(scenario())


def test_a_resync_offered_drops_what_waits() -> None:
    async def scenario() -> None:
        subscription = Subscription(asyncio.get_running_loop())
        subscription.offer([change(1)])
        subscription.offer([], resync=True)
        assert subscription.take() == ([], True)

    asyncio.run(scenario())


def test_a_change_offered_from_another_thread_wakes_the_waiting_stream_at_once() -> None:
    async def scenario() -> float:
        subscription = Subscription(asyncio.get_running_loop())
        offered = 0.0

        def offer_later() -> None:
            nonlocal offered
            time.sleep(0.2)
            offered = time.monotonic()
            subscription.offer([change(7)])

        threading.Thread(target=offer_later).start()
        await subscription.wait(10.0)
        woke = time.monotonic()
        assert subscription.take() == ([change(7)], False)
        return woke - offered

    assert asyncio.run(scenario()) < 1.0  # not the 10 s timeout


def test_waiting_without_changes_ends_after_the_timeout() -> None:
    async def scenario() -> float:
        subscription = Subscription(asyncio.get_running_loop())
        started = time.monotonic()
        await subscription.wait(0.1)
        return time.monotonic() - started

    assert 0.09 <= asyncio.run(scenario()) < 5.0


def test_a_stream_whose_event_loop_closed_is_marked_closed() -> None:
    loop = asyncio.new_event_loop()
    subscription = Subscription(loop)
    loop.close()
    subscription.offer([change(1)])
    assert subscription.closed


def test_published_messages_are_parsed_strictly() -> None:
    good = json.dumps([{"id": 3, "model": "m", "user": "u"}, {"id": 4, "model": None, "user": "u"}])
    assert _parse(good.encode()) == [Change(3, "m", "u"), Change(4, None, "u")]
    assert _parse(b"not json") == []
    assert _parse(b'{"id": 1}') == []  # not a list
    mixed = [{"id": "1"}, {"id": True}, {"id": 5, "model": 7}, "x", {"id": 6}]
    assert _parse(json.dumps(mixed)) == [Change(6, None, None)]


def test_each_redis_database_has_its_own_channel() -> None:
    assert channel_for("redis://127.0.0.1:6379") == "trainhub:live-changes:0"
    assert channel_for("redis://h:6379/3") == "trainhub:live-changes:3"
    assert channel_for("rediss://user:secret@h/2") == "trainhub:live-changes:2"
