"""Fault injection against real server processes: nothing a training run journaled is lost.

Every fault is made on 127.0.0.1 (docs/security.md §2.11): the hub killed with SIGKILL and restarted
on the same data dir and port, and the trainer killed with SIGKILL (then `trainhub sync`).
Trainers run in a subprocess (`python -m tests.e2e.faults train`) so that their timing and their
deaths are real. Random choices use a fixed seed and are printed (`pytest -s` shows them).
Connections cut, answered 503 or refused by `FaultProxy` are in test_network_faults.py.
"""

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import ProxiedHub
from tests.e2e.faults import (
    BIG,
    EPOCHS,
    MIB,
    Trainer,
    assert_metrics_exactly,
    assert_trained_with,
    checkpoint_shas,
    create_model,
    download_sha256,
    hub_metrics,
    hub_record,
    outbox_rows,
    run_sync,
    say,
    sha256_file,
    trainer_args,
)
from tests.servers import RunningServer, create_user, free_port, spawn_server

# serial: faults are timed (kills after N epochs, at a share of an upload, while staging); on a
# loaded machine they would land elsewhere in the run than the test means them to.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

SEED = 20261122


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
