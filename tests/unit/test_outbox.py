"""The durable outbox: merge, coalesce, versioned acknowledgements, survival of kill -9."""

import signal
import subprocess
import sys
from pathlib import Path

from trainhub.client.outbox import Outbox

HUB = "http://hub"


def test_a_resent_epoch_merges_into_the_pending_one(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.put_metrics(HUB, "m", 3, {"loss": 1.0, "val/loss": 2.0})
    outbox.put_metrics(HUB, "m", 3, {"loss": 0.5, "map": 0.1})
    [pending] = outbox.pending_metrics(HUB, "m")
    assert pending.values == {"loss": 0.5, "val/loss": 2.0, "map": 0.1}


def test_an_ack_never_removes_values_changed_after_they_were_read(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.put_metrics(HUB, "m", 0, {"loss": 1.0})
    outbox.put_metrics(HUB, "m", 1, {"loss": 0.9})
    sent = outbox.pending_metrics(HUB, "m")
    outbox.put_metrics(HUB, "m", 1, {"map": 0.3})  # final validation arrives during the send
    outbox.ack_metrics(sent)
    [left] = outbox.pending_metrics(HUB, "m")
    assert left.epoch == 1 and left.values == {"loss": 0.9, "map": 0.3}


def test_only_the_newest_pending_checkpoint_is_kept(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.put_upload(HUB, "m", "checkpoint", tmp_path / "last.pt", epoch=1)
    outbox.put_upload(HUB, "m", "final", tmp_path / "best.pt", epoch=9, map_value=0.5)
    outbox.put_upload(HUB, "m", "checkpoint", tmp_path / "last.pt", epoch=2, is_best=True)
    first = outbox.next_upload(HUB, "m")
    assert first is not None and first.kind == "checkpoint" and first.epoch == 2 and first.is_best
    outbox.ack_upload(first)
    final = outbox.next_upload(HUB, "m")
    assert final is not None and final.kind == "final" and final.map == 0.5
    outbox.note_attempt(final, "503", upload_url="http://hub/v1/uploads/x")
    again = outbox.next_upload(HUB, "m")
    assert (
        again is not None and again.attempts == 1 and again.upload_url == "http://hub/v1/uploads/x"
    )
    outbox.ack_upload(again)
    assert outbox.next_upload(HUB, "m") is None
    assert outbox.pending_models() == []


def test_models_and_servers_are_kept_apart(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.put_metrics(HUB, "a", 0, {"x": 1})
    outbox.put_metrics("http://other", "a", 0, {"x": 2})
    outbox.put_upload(HUB, "b", "final", tmp_path / "best.pt", epoch=0)
    assert sorted(outbox.pending_models()) == [(HUB, "a"), (HUB, "b"), ("http://other", "a")]
    assert outbox.counts(HUB, "a") == (1, 0)
    assert outbox.pending_metrics("http://other", "a")[0].values == {"x": 2}


WRITER = """
import sys, time
from pathlib import Path
from trainhub.client.outbox import Outbox
outbox = Outbox(Path(sys.argv[1]))
for epoch in range(50):
    outbox.put_metrics("http://hub", "m", epoch, {"loss": float(epoch)})
print("written", flush=True)
time.sleep(60)
"""


def test_journaled_metrics_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    pending = Outbox(path).pending_metrics(HUB, "m")
    assert [m.epoch for m in pending] == list(range(50))
