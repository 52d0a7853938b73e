"""The stock HUB session's request helpers: request_queue, _should_retry, _get_failure_message."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox


@dataclass
class Answer:
    """What a request function returns: the parts of an HTTP response request_queue reads."""

    status_code: int
    content: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Script:
    """A request function that answers from a list, recording each call."""

    def __init__(self, *answers: Answer | None) -> None:
        self.answers, self.calls = list(answers), 0

    def __call__(self, **kwargs: object) -> Answer | None:
        self.calls += 1
        return self.answers.pop(0) if self.answers else None


@pytest.fixture
def session(tmp_path: Path) -> HUBTrainingSession:
    sleeps: list[float] = []
    made = HUBTrainingSession(
        "yolo11n.yaml",
        url="http://127.0.0.1:9",
        api_key="ul" + "0" * 40,
        outbox=Outbox(tmp_path / "o.db"),
        sleep=sleeps.append,
    )
    made.sleeps = sleeps  # type: ignore[attr-defined]
    return made


def test_a_2xx_is_returned_at_once(session) -> None:
    script = Script(Answer(200))
    assert session.request_queue(script, thread=False).status_code == 200
    assert script.calls == 1 and session.sleeps == []


def test_no_answer_is_retried_with_growing_waits(session) -> None:
    script = Script(None, None, Answer(201))
    assert session.request_queue(script, retry=3, thread=False).status_code == 201
    assert script.calls == 3 and session.sleeps == [1, 2]


def test_retryable_statuses_are_retried_and_others_are_not(session) -> None:
    assert session._should_retry(503) and session._should_retry(429) and session._should_retry(408)
    assert not session._should_retry(404) and not session._should_retry(400)
    retried = Script(Answer(502), Answer(200))
    assert session.request_queue(retried, retry=3, thread=False).status_code == 200
    refused = Script(Answer(404, json.dumps({"success": False, "message": "gone"}).encode()))
    assert session.request_queue(refused, retry=3, thread=False).status_code == 404
    assert refused.calls == 1


def test_the_servers_message_is_logged_once(session, caplog) -> None:
    caplog.set_level(logging.WARNING)
    body = json.dumps({"success": False, "message": "model 'x' not found"}).encode()
    session.request_queue(Script(Answer(404, body)), thread=False)
    assert caplog.text.count("model 'x' not found") == 1


def test_a_429_message_uses_the_rate_limit_headers_and_survives_missing_ones(session) -> None:
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Limit": "50", "Retry-After": "7"}
    message = session._get_failure_message(Answer(429, b"", headers), 3, 30)
    assert "50" in message and "7" in message
    assert session._get_failure_message(Answer(429), 3, 30)  # the stock client crashed here
    assert session._get_failure_message(Answer(503), 3, 30) == "Retrying 3x for 30s."
    assert session._get_failure_message(Answer(500, b"<html>"), 0, 30) == ""


def test_metrics_that_never_got_through_return_to_the_failed_queue(session) -> None:
    metrics = {"3": json.dumps({"loss": 1.0})}
    session.request_queue(Script(None, None), retry=1, thread=False, metrics=metrics)
    assert session.metrics_upload_failed_queue == metrics
    session.request_queue(Script(Answer(200)), thread=False, metrics=metrics)
    assert session.metrics_upload_failed_queue == {}


def test_the_timeout_bounds_the_attempts(session) -> None:
    script = Script(None, None, None, None, None)
    session.request_queue(script, retry=10, timeout=-1, thread=False)
    assert script.calls == 0


def test_a_session_without_a_model_ignores_uploads(session, tmp_path: Path) -> None:
    session.metrics_queue[0] = json.dumps({"loss": 1.0})
    session.upload_metrics()
    (tmp_path / "last.pt").write_bytes(b"x")
    session.upload_model(0, tmp_path / "last.pt")
    assert session.outbox.pending_models() == []
    assert session.finish() is True
