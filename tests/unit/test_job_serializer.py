"""The job queue carries JSON only (server/jobs/serializer.py, docs/decisions/0017-job-queue.md)."""

import json
import pickle
from datetime import UTC, datetime

import pytest
from huey.registry import Message
from huey.utils import Error

from trainhub.server.jobs.serializer import JsonSerializer


def test_a_huey_message_goes_through_json_and_back() -> None:
    eta = datetime(2026, 12, 4, 12, 30, tzinfo=UTC).replace(tzinfo=None)
    message = Message(
        "id-1",
        "trainhub.server.jobs.queue.predict",
        eta,
        0,
        0,
        10,
        [{"image": "aGk=", "conf": 0.25}],
        {},
        None,
        None,
        30,
        eta,
    )
    data = JsonSerializer().serialize(message)
    assert data.startswith(b'{"$huey.message"')
    back = JsonSerializer().deserialize(data)
    assert isinstance(back, Message)
    assert back.args == [{"image": "aGk=", "conf": 0.25}] and back.eta == eta
    assert back.priority == 10 and back.expires_resolved == eta


def test_results_and_errors_round_trip() -> None:
    serializer = JsonSerializer()
    record = {"ok": True, "record": {"results": [{"box": {"x1": 1.5}}], "n": None}}
    assert serializer.deserialize(serializer.serialize(record)) == record
    error = serializer.deserialize(serializer.serialize(Error({"error": "boom", "retries": 0})))
    assert isinstance(error, Error) and error.metadata == {"error": "boom", "retries": 0}


@pytest.mark.parametrize("value", [b"bytes", {1: "int key"}, {"x": {1, 2}}, object(), float("nan")])
def test_anything_but_json_is_refused(value) -> None:
    with pytest.raises((TypeError, ValueError)):
        JsonSerializer().serialize(value)


def test_a_pickle_on_the_queue_is_never_unpickled() -> None:
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('unpickled')",))

    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):  # refused, never run
        JsonSerializer().deserialize(pickle.dumps(Boom()))
