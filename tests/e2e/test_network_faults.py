"""Network faults against a real server process: nothing a training run journaled is lost.

Every fault is made on 127.0.0.1 (docs/security.md §2.11) by `FaultProxy` (tests/e2e/faults.py),
which stands between the client and the hub: connections cut halfway through a large upload,
a cut the hub learns of late, 503s for a while, answers cut short after the hub acted, and a
refused resumable upload; and checkpoint files that vanish or change while they are queued.
The hub killed and the trainer killed are in test_faults.py.
"""

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ProxiedHub
from tests.e2e.faults import (
    BIG,
    CKPT_BYTES,
    EPOCHS,
    MIB,
    Trainer,
    assert_metrics_exactly,
    assert_trained_with,
    checkpoint_bytes,
    create_model,
    download_sha256,
    epoch_metrics,
    hub_metrics,
    hub_record,
    say,
    sha256_bytes,
    trainer_args,
    write_random_file,
)
from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox

# serial: faults are timed (503s for a while, cuts mid-upload, a FIN held back for 5 s); on a
# loaded machine they would land elsewhere in the run than the test means them to.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]


# --- 3. a connection cut halfway through a large upload -----------------------------------------


def session_through(
    hub: ProxiedHub, model_id: str, tmp_path: Path, **options: Any
) -> HUBTrainingSession:
    return HUBTrainingSession(
        model_id,
        url=hub.url,
        api_key=hub.key,
        outbox=Outbox(tmp_path / "outbox" / "outbox.sqlite3"),
        weights_dir=tmp_path / "weights",
        progress=False,
        **options,
    )


def final_upload_with_a_cut(
    hub: ProxiedHub, tmp_path: Path, name: str, linger_server_s: float
) -> tuple[str, HUBTrainingSession, float, int]:
    """Send 3 epochs and a 64 MiB final upload, cutting the connection at 50 % of its bytes.

    Return the model id, the session, the seconds finish took and the bytes sent after the cut.
    """
    model_id = hub.model(name)
    session = session_through(
        hub, model_id, tmp_path, resumable_threshold_bytes=MIB, flush_timeout_s=240
    )
    for epoch in range(3):
        session.metrics_queue[epoch] = json.dumps(epoch_metrics(epoch))
        session.upload_metrics()
    best = tmp_path / "best.pt"
    sha256 = write_random_file(best, BIG, seed=7)
    cuts_before, events_before = len(hub.proxy.cuts), len(hub.proxy.events)
    hub.proxy.cut_after(BIG // 2, linger_server_s=linger_server_s)
    started = time.monotonic()
    session.upload_model(2, best, map=0.5, final=True)
    took = time.monotonic() - started
    assert len(hub.proxy.cuts) > cuts_before, "the proxy never cut the upload"
    cut = hub.proxy.cuts[cuts_before]
    after_cut = hub.proxy.upstream_bytes - cut
    say("proxy: " + "; ".join(hub.proxy.events[events_before:]))
    say(
        f"{name}: after the cut the client sent "
        f"{after_cut:,} bytes ({after_cut / BIG:.1%} of the 64 MiB file); finish took {took:.1f} s"
    )
    assert session.outbox.counts(session.client.url, model_id) == (0, 0)
    assert_trained_with(hub.url, hub.key, model_id, sha256)
    assert_metrics_exactly(hub_metrics(hub.url, hub.key, model_id), range(3))
    return model_id, session, took, after_cut


@pytest.mark.timeout(300)
def test_a_connection_cut_halfway_through_the_final_upload_resumes(
    hub: ProxiedHub, tmp_path: Path
) -> None:
    _, _, _, after_cut = final_upload_with_a_cut(hub, tmp_path, "cut-upload", 0.0)
    assert after_cut < 0.75 * BIG  # resumed from the hub's offset, not from the start


@pytest.mark.timeout(300)
def test_a_cut_the_hub_learns_of_late_still_resumes(hub: ProxiedHub, tmp_path: Path) -> None:
    """The client's side is reset, but the hub's side stays open for 5 s (a lost FIN): the hub
    still holds the broken PATCH when the client asks where to resume."""
    _, _, _, after_cut = final_upload_with_a_cut(hub, tmp_path, "late-cut-upload", 5.0)
    # a PATCH refused while the hub still held the broken one may have been sent in full (1x),
    # but starting the upload over as well (2x) is what resuming exists to avoid
    assert after_cut < 1.75 * BIG


# --- 4. checkpoint files that vanish or change ---------------------------------------------------


@pytest.mark.timeout(180)
def test_a_checkpoint_deleted_while_queued_is_skipped_and_the_final_upload_succeeds(
    hub: ProxiedHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    model_id = hub.model("deleted-checkpoint")
    session = session_through(hub, model_id, tmp_path, heartbeats=False)
    session.rate_limits.update(metrics=0.1, ckpt=1.0)
    last = tmp_path / "last.pt"
    last.write_bytes(checkpoint_bytes(0, CKPT_BYTES))
    session.upload_model(0, last)  # the first checkpoint goes at once
    wait_until(lambda: hub_record(hub.url, hub.key, model_id)["has_last_weights"], 30)
    last.write_bytes(checkpoint_bytes(1, CKPT_BYTES))
    session.upload_model(1, last)  # due 1 s after the first one
    last.unlink()
    wait_until(lambda: session.outbox.counts(session.client.url, model_id)[1] == 0, 30)
    warnings = [r.getMessage() for r in caplog.records if "disappeared" in r.getMessage()]
    say(f"warning: {warnings}")
    assert len(warnings) == 1 and "last.pt" in warnings[0]
    record = hub_record(hub.url, hub.key, model_id)
    assert download_sha256(record["resume"]) == sha256_bytes(checkpoint_bytes(0, CKPT_BYTES))
    best = tmp_path / "best.pt"
    sha256 = write_random_file(best, 300_000, seed=4)
    session.metrics_queue[1] = json.dumps(epoch_metrics(1))
    session.upload_model(1, best, map=0.4, final=True)
    assert session.outbox.counts(session.client.url, model_id) == (0, 0)
    assert_trained_with(hub.url, hub.key, model_id, sha256)


class RecordingTransport(httpx.BaseTransport):
    """Forward requests, keeping the sha256 of the file part of every weights upload."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.uploads: list[tuple[str, str, int]] = []  # (file part name, sha256, size)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/upload"):
            assert isinstance(request.stream, httpx.SyncByteStream)
            body = b"".join(request.stream)
            request.stream = httpx.ByteStream(body)
            start = body.index(b'filename="') + len(b'filename="')
            name = body[start : body.index(b'"', start)].decode()
            data = body[body.index(b"\r\n\r\n", start) + 4 : body.rindex(b"\r\n--")]
            self.uploads.append((name, hashlib.sha256(data).hexdigest(), len(data)))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.timeout(180)
def test_a_checkpoint_rewritten_while_it_is_staged_is_never_sent_half_written(
    hub: ProxiedHub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer saves last.pt in place, in 8 chunks with a 15 ms pause after each (as torch.save
    writes one tensor after another, serialising in between), and queues each version once it
    is saved. With checkpoints due every 0.25 s the uploader takes up a queued version while the
    next one is being written. Every checkpoint that reaches the hub must be one whole version."""
    caplog.set_level(logging.WARNING)
    model_id = hub.model("rewritten-checkpoint")
    recorder = RecordingTransport()
    http = httpx.Client(transport=recorder)
    session = session_through(hub, model_id, tmp_path, heartbeats=False, http=http)
    session.rate_limits.update(metrics=0.1, ckpt=0.25)
    last = tmp_path / "last.pt"
    size, pieces = 256 * 1024, 8
    versions: set[str] = set()
    stop = threading.Event()

    def rewrite() -> None:
        version = 0
        while not stop.is_set():
            data = checkpoint_bytes(version, size)
            with last.open("wb") as handle:
                for i in range(pieces):
                    handle.write(data[i * size // pieces : (i + 1) * size // pieces])
                    handle.flush()
                    time.sleep(0.015)
            versions.add(sha256_bytes(data))
            session.upload_model(version, last)
            version += 1
            time.sleep(0.005)

    writer = threading.Thread(target=rewrite, name="checkpoint-writer")
    writer.start()
    time.sleep(6)
    stop.set()
    writer.join(timeout=30)
    wait_until(lambda: session.outbox.counts(session.client.url, model_id)[1] == 0, 60)
    best = tmp_path / "best.pt"
    sha256 = write_random_file(best, 200_000, seed=5)
    session.upload_model(0, best, map=0.3, final=True)
    http.close()
    checkpoints = [(sha, n) for name, sha, n in recorder.uploads if name == "last.pt"]
    skipped = [r for r in caplog.records if "kept changing" in r.getMessage()]
    whole = [sha in versions for sha, _ in checkpoints]
    broken = [f"{n:,} bytes" for sha, n in checkpoints if sha not in versions]
    say(
        f"{len(versions)} versions saved, {len(checkpoints)} checkpoint uploads "
        f"({whole.count(False)} not a whole version), {len(skipped)} skipped as changing"
    )
    assert checkpoints, "no checkpoint was uploaded at all"
    assert all(whole), (
        f"{len(broken)} of {len(checkpoints)} checkpoint uploads were no whole version of last.pt "
        f"(each version is {size:,} bytes; these were {', '.join(broken)})"
    )
    record = assert_trained_with(hub.url, hub.key, model_id, sha256)
    assert download_sha256(record["resume"]) in versions


# --- 5. the hub answers 503 for a while ----------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_hub_answering_503_for_a_while_loses_nothing(hub: ProxiedHub, tmp_path: Path) -> None:
    model_id = hub.model("unavailable")
    args = trainer_args(
        hub.url,
        hub.key,
        model_id,
        tmp_path,
        "--metrics-interval",
        "0.2",
        "--ckpt-interval",
        "0.5",
        "--flush-timeout",
        "240",
    )
    trainer = Trainer(args, tmp_path / "trainer.log")
    try:
        trainer.wait_for("ready", 120)
        trainer.wait_for("epoch", 60, lambda e: e["epoch"] >= 10)
        hub.proxy.answer_status(503, seconds=6, retry_after_s=1)
        done = trainer.wait_for("done", 280)
        assert trainer.wait(60) == 0, trainer.log()
    finally:
        trainer.close()
    say(
        f"503 answered to {hub.proxy.answered} connections; the slowest training-loop call took "
        f"{done['max_call_ms']:.2f} ms; finish took {done['finish_s']:.1f} s"
    )
    assert hub.proxy.answered > 0
    assert done["drained"], (done, trainer.log())
    assert_metrics_exactly(hub_metrics(hub.url, hub.key, model_id), range(EPOCHS))
    assert_trained_with(hub.url, hub.key, model_id, done["sha256"])


@pytest.mark.timeout(300)
def test_answers_cut_short_after_the_hub_acted_lose_and_duplicate_nothing(
    hub: ProxiedHub, tmp_path: Path
) -> None:
    """The hub stores each request, but the client never gets the whole answer (the proxy keeps
    only its first 20 bytes) on the next 4 connections: re-sent epochs must merge, not repeat,
    and the final weights must arrive whole."""
    model_id = hub.model("truncated-answers")
    session = session_through(hub, model_id, tmp_path, heartbeats=False, flush_timeout_s=240)
    for epoch in range(EPOCHS):
        session.metrics_queue[epoch] = json.dumps(epoch_metrics(epoch))
        session.upload_metrics()
    best = tmp_path / "best.pt"
    sha256 = write_random_file(best, 3 * MIB, seed=9)
    hub.proxy.truncate_responses(20, connections=4)
    hub.proxy.drop_all()  # the session's open connection would dodge the fault
    session.upload_model(EPOCHS - 1, best, map=0.5, final=True)
    truncated = [e for e in hub.proxy.events if "truncated" in e]
    say(f"{len(truncated)} answers cut short")
    assert truncated
    assert session.outbox.counts(session.client.url, model_id) == (0, 0)
    assert_metrics_exactly(hub_metrics(hub.url, hub.key, model_id), range(EPOCHS))
    assert_trained_with(hub.url, hub.key, model_id, sha256)


@pytest.mark.timeout(300)
def test_a_hub_refusing_a_new_resumable_upload_does_not_lose_the_final_weights(
    hub: ProxiedHub, tmp_path: Path
) -> None:
    """The hub answers 409 to `POST /v1/uploads` while a user has 10 unfinished resumable
    uploads (abandoned ones count for 24 h: a client killed between the hub's create and its
    journal, or one whose create answer was lost). The final weights must still reach the hub,
    or stay in the outbox with finish() saying so; they must not be dropped as done."""
    key = hub.server.keys["bob"]
    model_id = create_model(hub.url, key, "upload-quota")
    with httpx.Client(base_url=hub.url, headers={"x-api-key": key}, timeout=30) as api:
        for _ in range(10):
            meta = {"modelId": model_id, "type": "final", "epoch": "0", "map": "0.1"}
            encoded = ",".join(
                f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items()
            )
            created = api.post(
                "/v1/uploads",
                headers={
                    "Tus-Resumable": "1.0.0",
                    "Upload-Length": "10",
                    "Upload-Metadata": encoded,
                },
            )
            assert created.status_code in (201, 409), created.text
    session = HUBTrainingSession(
        model_id,
        url=hub.url,
        api_key=key,
        outbox=Outbox(tmp_path / "outbox.sqlite3"),
        weights_dir=tmp_path / "weights",
        progress=False,
        heartbeats=False,
        resumable_threshold_bytes=MIB,
        flush_timeout_s=30,
    )
    best = tmp_path / "best.pt"
    sha256 = write_random_file(best, 2 * MIB, seed=11)
    session.metrics_queue[0] = json.dumps(epoch_metrics(0))
    session.upload_model(0, best, map=0.5, final=True)
    left = session.outbox.counts(session.client.url, model_id)
    record = hub_record(hub.url, key, model_id)
    say(f"after a 409 on create: outbox {left}, hub status {record['status']}")
    if record["weights"]:
        assert download_sha256(record["weights"]) == sha256
    else:
        assert left[1] == 1, "the final weights are neither on the hub nor in the outbox"


def wait_until(condition: Callable[[], object], timeout_s: float, every_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met in {timeout_s} s")
        time.sleep(every_s)
