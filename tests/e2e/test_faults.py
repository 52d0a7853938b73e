"""Fault injection against real server processes: nothing a training run journaled is lost.

Every fault is made on 127.0.0.1 (docs/security.md §2.11): the hub killed with SIGKILL and restarted
on the same data dir and port, the trainer killed with SIGKILL (then `trainhub sync`), and
connections cut, answered 503 or refused by `FaultProxy` (tests/e2e/faults.py). Trainers run in a
subprocess (`python -m tests.e2e.faults train`) so that their timing and their deaths are real.
Random choices use a fixed seed and are printed (`pytest -s` shows them).
"""

import base64
import hashlib
import json
import logging
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.faults import (
    MIB,
    FaultProxy,
    Trainer,
    assert_metrics_exactly,
    checkpoint_bytes,
    create_model,
    download_sha256,
    epoch_metrics,
    hub_metrics,
    hub_record,
    outbox_rows,
    run_sync,
    sha256_bytes,
    sha256_file,
    write_random_file,
)
from tests.servers import RunningServer, create_user, free_port, spawn_server, start_server
from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox

# serial: faults are timed (kills after N epochs, 503s for a while, cuts mid-upload); on a loaded
# machine they would land elsewhere in the run than the test means them to.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

SEED = 20261122
EPOCHS = 50
CKPT_BYTES = 64 * 1024
BIG = 64 * MIB


def say(text: str) -> None:
    """Print a figure or a random choice (shown with `pytest -s`, and kept in the log)."""
    sys.stdout.write(f"[faults] {text}\n")
    sys.stdout.flush()
    logging.getLogger("tests.faults").warning(text)


def checkpoint_shas(ckpt_bytes: int = CKPT_BYTES) -> set[str]:
    return {sha256_bytes(checkpoint_bytes(e, ckpt_bytes)) for e in range(EPOCHS)}


def trainer_args(url: str, key: str, model_id: str, work: Path, *extra: str) -> list[str]:
    return [
        "--url",
        url,
        "--key",
        key,
        "--model",
        model_id,
        "--outbox",
        str(work / "outbox" / "outbox.sqlite3"),
        "--workdir",
        str(work / "run"),
        "--ckpt-bytes",
        str(CKPT_BYTES),
        *extra,
    ]


def assert_trained_with(url: str, key: str, model_id: str, sha256: str) -> dict[str, Any]:
    record = hub_record(url, key, model_id)
    assert record["status"] == "trained", record["status"]
    assert record["weights"], record
    assert download_sha256(record["weights"]) == sha256
    return record


# --- a hub behind a fault proxy, shared by the tests that do not kill the hub --------------------


@dataclass
class ProxiedHub:
    """A running hub whose public URL is the proxy's: every request and link goes through it."""

    server: RunningServer
    proxy: FaultProxy

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def key(self) -> str:
        return self.server.keys["alice"]

    def model(self, name: str) -> str:
        return create_model(self.url, self.key, name)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedHub]:
    proxy = FaultProxy(target_port=0).start()
    try:
        with start_server(tmp_path_factory.mktemp("faults"), "--public-url", proxy.url) as server:
            proxy.target_port = int(urlsplit(server.url).port or 0)
            yield ProxiedHub(server, proxy)
    finally:
        proxy.close()


@pytest.fixture
def hub(proxied: ProxiedHub) -> Iterator[ProxiedHub]:
    """The shared hub, its proxy reset to plain forwarding after the test."""
    yield proxied
    proxied.proxy.reset()


# --- 1. the hub killed at random points ---------------------------------------------------------


def trainer_phase(trainer: Trainer) -> str:
    names = {e["event"] for e in trainer.events}
    return next((n for n in ("done", "finishing") if n in names), "training")


@pytest.mark.timeout(480)
def test_the_hub_killed_at_random_points_of_a_50_epoch_run_loses_nothing(tmp_path: Path) -> None:
    """Kill 1 lands at a random epoch of the training loop; kill 2 once the hub has received a
    random share of the 16 MiB final upload (seen as the size of the hub's temporary upload file
    under blobs/tmp); kill 3 a random moment after that restart, if the run is not over."""
    data_dir = tmp_path / "hub-data"
    key = create_user(data_dir, "alice", admin=True)
    port = free_port()
    server = spawn_server(data_dir, port)
    url = server.url
    rng = random.Random(SEED)
    kill_epoch = rng.randrange(3, 45)
    upload_kill_share = round(rng.uniform(0.05, 0.95), 2)
    last_kill_s = round(rng.uniform(0.0, 1.5), 2)
    downtimes_s = [round(rng.uniform(0.0, 1.5), 2) for _ in range(3)]
    say(
        f"seed {SEED}: kill 1 at epoch {kill_epoch}; kill 2 once the hub got "
        f"{upload_kill_share:.0%} of the final upload; kill 3 {last_kill_s} s after the second "
        f"restart; the hub stays dead {downtimes_s} s before each restart begins"
    )
    try:
        model_id = create_model(url, key, "killed-hub")
        args = trainer_args(
            url,
            key,
            model_id,
            tmp_path,
            "--metrics-interval",
            "0.25",
            "--ckpt-interval",
            "0.5",
            "--flush-timeout",
            "300",
            "--final-bytes",
            str(16 * MIB),
        )
        trainer = Trainer(args, tmp_path / "trainer.log")
        try:
            trainer.wait_for("ready", 120)
            started = time.monotonic()

            def kill_and_restart(number: int, downtime_s: float) -> RunningServer:
                phase = trainer_phase(trainer)
                server.kill(signal.SIGKILL)
                say(
                    f"kill {number}: t={time.monotonic() - started:.2f} s, trainer at epoch "
                    f"{trainer.last_epoch()} ({phase})"
                )
                time.sleep(downtime_s)
                restarted = spawn_server(data_dir, port)
                say(f"hub back after kill {number}: t={time.monotonic() - started:.2f} s")
                return restarted

            trainer.wait_for("epoch", 60, lambda e: e["epoch"] >= kill_epoch)
            server = kill_and_restart(1, downtimes_s[0])
            received = wait_for_upload_share(
                data_dir, int(upload_kill_share * 16 * MIB), lambda: trainer_phase(trainer)
            )
            say(f"the hub had {received / MIB:.1f} MiB of the final upload")
            server = kill_and_restart(2, downtimes_s[1])
            time.sleep(last_kill_s)
            if trainer_phase(trainer) != "done":
                server = kill_and_restart(3, downtimes_s[2])
            else:
                say("no kill 3: the run was over")
            done = trainer.wait_for("done", 360)
            assert trainer.wait(60) == 0, trainer.log()
        finally:
            trainer.close()
        say(
            f"trainer: {done['calls']} calls, the slowest took {done['max_call_ms']:.2f} ms; "
            f"finish took {done['finish_s']:.1f} s; t={time.monotonic() - started:.1f} s"
        )
        assert done["drained"], (done, trainer.log())
        assert_metrics_exactly(hub_metrics(url, key, model_id), range(EPOCHS))
        record = assert_trained_with(url, key, model_id, done["sha256"])
        if record["resume"]:  # a checkpoint, when one is kept, is one the trainer saved whole
            assert download_sha256(record["resume"]) in checkpoint_shas()
        assert outbox_rows(tmp_path / "outbox" / "outbox.sqlite3") == ([], [])
    finally:
        server.kill(signal.SIGTERM)


def bytes_read(pid: int) -> int:
    """Bytes the process read so far through read() calls (rchar of /proc/<pid>/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError(f"no rchar in /proc/{pid}/io")


def wait_for_upload_share(data_dir: Path, n_bytes: int, phase: Callable[[], str]) -> int:
    """Wait until the hub's temporary upload file holds `n_bytes` (or the run is over); return
    its size then (0 if the run ended first)."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and phase() != "done":
        for temporary in (data_dir / "blobs" / "tmp").glob(".upload-*"):
            try:
                size = temporary.stat().st_size
            except FileNotFoundError:
                continue
            if size >= n_bytes:
                return size
        time.sleep(0.002)
    return 0


# --- 2. the trainer killed, then `trainhub sync` -------------------------------------------------


@pytest.mark.timeout(300)
def test_a_trainer_killed_after_30_epochs_leaves_every_epoch_to_sync(
    hub: ProxiedHub, tmp_path: Path
) -> None:
    model_id = hub.model("killed-trainer")
    args = trainer_args(hub.url, hub.key, model_id, tmp_path, "--metrics-interval", "0.5")
    trainer = Trainer(args, tmp_path / "trainer.log")
    try:
        trainer.wait_for("ready", 120)
        trainer.wait_for("epoch", 60, lambda e: e["epoch"] >= 30)
        trainer.kill()
    finally:
        trainer.close()
    reported = trainer.last_epoch()
    outbox = tmp_path / "outbox" / "outbox.sqlite3"
    pending, uploads = outbox_rows(outbox)
    on_hub = set(map(int, hub_metrics(hub.url, hub.key, model_id).get("train/box_loss", {})))
    say(
        f"trainer killed after reporting epoch {reported}: {len(on_hub)} epochs already on the "
        f"hub, {len(pending)} journaled and pending, uploads pending {uploads}"
    )
    assert pending, "nothing was left for sync: the kill came too late to test anything"
    journaled = on_hub | set(pending)
    assert journaled == set(range(max(journaled) + 1)), sorted(journaled)
    assert max(journaled) in (reported, reported + 1)

    result = run_sync(hub.url, hub.key, outbox, tmp_path / "config")
    say(f"trainhub sync: exit {result.returncode}: {result.stdout.strip()} {result.stderr[-500:]}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_metrics_exactly(hub_metrics(hub.url, hub.key, model_id), sorted(journaled))
    assert outbox_rows(outbox) == ([], [])
    record = hub_record(hub.url, hub.key, model_id)
    assert record["resume"], "the pending checkpoint was not sent"
    assert download_sha256(record["resume"]) == sha256_file(tmp_path / "run" / "last.pt")


@pytest.mark.timeout(300)
def test_a_trainer_killed_during_its_final_upload_is_completed_by_sync(
    hub: ProxiedHub, tmp_path: Path
) -> None:
    model_id = hub.model("killed-mid-upload")
    args = trainer_args(
        hub.url,
        hub.key,
        model_id,
        tmp_path,
        "--epochs",
        "5",
        "--sleep",
        "0.01",
        "--final-bytes",
        str(BIG),
        "--threshold",
        str(MIB),
    )
    hub.proxy.rate_bytes_per_s = 32 * MIB  # the upload then takes about 2 s: time to aim
    trainer = Trainer(args, tmp_path / "trainer.log")
    try:
        trainer.wait_for("ready", 120)
        finishing = trainer.wait_for("finishing", 60)
        mark = hub.proxy.upstream_bytes
        assert hub.proxy.wait_upstream(mark + BIG // 2, 120), trainer.log()
        trainer.kill()
    finally:
        trainer.close()
    hub.proxy.rate_bytes_per_s = None
    killed_at = hub.proxy.upstream_bytes - mark
    _, uploads = outbox_rows(tmp_path / "outbox" / "outbox.sqlite3")
    say(f"trainer killed {killed_at / MIB:.1f} MiB into its final upload; outbox: {uploads}")
    assert [(kind, url is not None) for kind, _, url in uploads] == [("final", True)]

    before = hub.proxy.upstream_bytes
    result = run_sync(hub.url, hub.key, tmp_path / "outbox" / "outbox.sqlite3", tmp_path / "cfg")
    resent = hub.proxy.upstream_bytes - before
    say(
        f"trainhub sync sent {resent / MIB:.1f} MiB ({resent / BIG:.0%} of the file) to "
        f"finish it: {result.stdout.strip()}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_trained_with(hub.url, hub.key, model_id, finishing["sha256"])
    assert resent < 0.75 * BIG
    assert outbox_rows(tmp_path / "outbox" / "outbox.sqlite3") == ([], [])


@pytest.mark.timeout(300)
def test_a_trainer_killed_while_staging_its_final_weights_never_sends_a_partial_copy(
    hub: ProxiedHub, tmp_path: Path
) -> None:
    """The trainer is killed once it has read 8 MiB of its 128 MiB final weights, before any of
    them was sent: in the middle of preparing the upload (today: copying the file to a staging
    file in the outbox's folder). Whatever it left behind, the next process must not send a
    partial file as the final weights."""
    size = 128 * MIB
    model_id = hub.model("killed-mid-staging")
    args = trainer_args(
        hub.url,
        hub.key,
        model_id,
        tmp_path,
        "--epochs",
        "2",
        "--sleep",
        "0",
        "--final-bytes",
        str(size),
        "--threshold",
        str(MIB),
    )
    trainer = Trainer(args, tmp_path / "trainer.log")
    try:
        trainer.wait_for("ready", 120)
        trainer.wait_for("epoch", 60, lambda e: e["epoch"] == 1)
        read_before = bytes_read(trainer.proc.pid)  # before the trainer writes its final file
        finishing = trainer.wait_for("finishing", 120)
        upstream = hub.proxy.upstream_bytes
        deadline, read = time.monotonic() + 60, 0
        while read < 8 * MIB and time.monotonic() < deadline:
            read = bytes_read(trainer.proc.pid) - read_before
            time.sleep(0.0005)
        trainer.kill()
    finally:
        trainer.close()
    sent = hub.proxy.upstream_bytes - upstream
    staged = [
        f"{p.name}: {p.stat().st_size / MIB:.1f} MiB"
        for p in (tmp_path / "outbox" / "staging").glob("*")
    ]
    say(
        f"trainer killed after reading {read / MIB:.1f} MiB of its final weights and sending "
        f"{sent:,} bytes; left in the staging folder: {staged}"
    )
    assert 8 * MIB <= read < size, "the kill did not land while the file was being read"
    assert sent < MIB, "the upload had begun: this test is about the step before it"

    result = run_sync(hub.url, hub.key, tmp_path / "outbox" / "outbox.sqlite3", tmp_path / "cfg")
    say(f"trainhub sync: exit {result.returncode}: {result.stdout.strip()}")
    record = hub_record(hub.url, hub.key, model_id)
    if record["weights"]:
        got = download_sha256(record["weights"])
        assert got == finishing["sha256"], (
            f"the hub holds final weights that are not the file (sha256 {got[:12]}... instead "
            f"of {finishing['sha256'][:12]}...): the partial staging copy was uploaded"
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_trained_with(hub.url, hub.key, model_id, finishing["sha256"])


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
