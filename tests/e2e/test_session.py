"""HUBTrainingSession against a real hub: create, train, checkpoint, finish, load, resume."""

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.servers import (
    TRAINHUB,
    RunningServer,
    create_user,
    free_port,
    spawn_server,
    start_server,
)
from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox, Pending

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    with start_server(tmp_path_factory.mktemp("session")) as server:
        yield server


def api(hub: RunningServer, user: str = "alice") -> httpx.Client:
    return httpx.Client(base_url=hub.url, headers={"x-api-key": hub.keys[user]}, timeout=30)


def session_for(
    hub: RunningServer, identifier: str, tmp_path: Path, **options
) -> HUBTrainingSession:
    return HUBTrainingSession(
        identifier,
        url=hub.url,
        api_key=hub.keys["alice"],
        outbox=Outbox(tmp_path / "outbox.db"),
        weights_dir=tmp_path / "weights",
        progress=False,
        **options,
    )


def train(session: HUBTrainingSession, tmp_path: Path, epochs: int) -> str:
    """Run a fake training loop through the HUB-compatible surface; return best.pt's sha256."""
    for epoch in range(epochs):
        session.metrics_queue[epoch] = json.dumps(
            {"train/loss": 1.0 / (epoch + 1), "val/loss": float("nan")}
        )
        session.upload_metrics()
        (tmp_path / "last.pt").write_bytes(os.urandom(50_000))
        session.upload_model(epoch, tmp_path / "last.pt", is_best=epoch == epochs - 1)
    best = os.urandom(120_000)
    (tmp_path / "best.pt").write_bytes(best)
    session.metrics_queue[epochs - 1] = json.dumps({"metrics/mAP50-95(B)": 0.42})
    session.upload_model(epochs - 1, tmp_path / "best.pt", map=0.42, final=True)
    return hashlib.sha256(best).hexdigest()


def test_a_run_sends_every_epoch_once_and_the_final_weights(hub, tmp_path: Path) -> None:
    session = HUBTrainingSession.create_session(
        "yolo11n.yaml",
        {"epochs": 6, "imgsz": 64, "batch": 4, "data": "shapes.yaml"},
        url=hub.url,
        api_key=hub.keys["alice"],
        outbox=Outbox(tmp_path / "o.db"),
        progress=False,
    )
    assert session is not None and session.model_id is not None
    assert session.model_url == f"{hub.url}/models/{session.model_id}"
    sha256 = train(session, tmp_path, 6)
    with api(hub) as client:
        record = client.get(f"/v1/models/{session.model_id}").json()["data"]
        series = {
            s["meta"]["name"]: s["data"]
            for s in client.get(f"/v1/models/{session.model_id}/metrics").json()["data"]
        }
        weights = httpx.get(record["weights"]).content
    assert record["status"] == "trained" and record["cfg"] == "yolo11n.yaml"
    assert record["train_args"]["epochs"] == 6 and record["train_args"]["data"] == "shapes.yaml"
    assert list(series["train/loss"]) == [str(e) for e in range(6)]
    assert series["val/loss"]["0"] is None and series["metrics/mAP50-95(B)"] == {"5": 0.42}
    assert hashlib.sha256(weights).hexdigest() == sha256
    assert [a["state"] for a in record["agents"]] == ["finished"]
    assert record["agents"][0]["intervalSeconds"] == 30.0
    assert session.outbox.pending_models() == []
    assert not [t for t in threading.enumerate() if t.name.startswith("trainhub-upload")]


def test_a_model_that_is_not_a_yolo_file_gets_the_name_given(hub, tmp_path: Path) -> None:
    session = HUBTrainingSession.create_session(
        "TinyNet.yaml",
        {},  # a loop with no trainer arguments still gets its model
        name="TinyNet",
        url=hub.url,
        api_key=hub.keys["alice"],
        outbox=Outbox(tmp_path / "o.db"),
        progress=False,
    )
    assert session is not None and session.model_id is not None
    session.finish()
    with api(hub) as client:
        record = client.get(f"/v1/models/{session.model_id}").json()["data"]
    assert record["meta"]["name"] == "TinyNet"
    assert record["lineage"]["architecture"]["name"] == "TinyNet"


def test_loading_a_trained_model_downloads_its_best_weights_once(hub, tmp_path: Path) -> None:
    first = HUBTrainingSession.create_session(
        "yolo11n.yaml",
        {"epochs": 2},
        url=hub.url,
        api_key=hub.keys["alice"],
        outbox=Outbox(tmp_path / "o.db"),
        progress=False,
    )
    assert first is not None
    sha256 = train(first, tmp_path, 2)
    loaded = session_for(hub, f"{hub.url}/models/{first.model_id}", tmp_path)
    assert loaded.model_file is not None
    path = Path(loaded.model_file)
    assert path.parent == tmp_path / "weights" / "hub" / str(first.model_id)
    assert (
        path.name.endswith("-best.pt") and hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    )
    assert loaded.train_args is None


def test_a_model_with_a_checkpoint_resumes_from_it(hub, tmp_path: Path) -> None:
    with api(hub) as client:
        model_id = client.post("/v1/models", json={"meta": {"name": "r"}}).json()["data"]["id"]
    session = session_for(hub, f"{hub.url}/models/{model_id}", tmp_path)
    (tmp_path / "last.pt").write_bytes(b"checkpoint-of-epoch-0")
    session.upload_model(0, tmp_path / "last.pt")
    assert session.finish()
    resumed = session_for(hub, model_id, tmp_path)
    assert resumed.train_args == {"data": None, "resume": True}
    assert resumed.model_file is not None
    assert Path(resumed.model_file).read_bytes() == b"checkpoint-of-epoch-0"
    resumed.finish()


def test_an_untrained_model_starts_from_its_architecture_or_parent(
    hub, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    with api(hub) as client:
        plain = client.post(
            "/v1/models",
            json={"lineage": {"architecture": {"name": "yolo11s"}}, "config": {"epochs": 3}},
        ).json()["data"]["id"]
        parent = client.post(
            "/v1/models", json={"lineage": {"parent": {"name": "yolo11n.pt"}}}
        ).json()["data"]["id"]
    first = session_for(hub, plain, tmp_path)
    assert (first.model_file, first.train_args) == ("yolo11s.yaml", {"epochs": 3})
    second = session_for(hub, parent, tmp_path)
    assert second.model_file == "yolo11n.pt"
    first.finish()
    second.finish()
    # neither has a dataset: a plain loop brings its own data, so nothing is said about it
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_downloaded_weights_go_to_the_users_cache_not_the_current_folder(
    hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = HUBTrainingSession.create_session(
        "yolo11n.yaml",
        {"epochs": 1},
        url=hub.url,
        api_key=hub.keys["alice"],
        outbox=Outbox(tmp_path / "o.db"),
        progress=False,
    )
    assert first is not None
    sha256 = train(first, tmp_path, 1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    loaded = HUBTrainingSession(
        f"{hub.url}/models/{first.model_id}",
        api_key=hub.keys["alice"],
        outbox=Outbox(tmp_path / "o.db"),
        progress=False,
    )
    assert loaded.model_file is not None
    path = Path(loaded.model_file)
    assert path.parent == tmp_path / "cache" / "trainhub" / "weights" / "hub" / str(first.model_id)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_missing_model_or_bad_key_gives_no_session_and_a_reason(
    hub, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.WARNING)
    with pytest.raises(ValueError, match="does not exist"):
        session_for(hub, "A" * 20, tmp_path)
    bad = HUBTrainingSession.create_session(
        f"{hub.url}/models/{'A' * 20}?api_key=ul{'0' * 40}", outbox=Outbox(tmp_path / "o.db")
    )
    assert bad is None
    assert "not valid or was revoked" in caplog.text
    assert HUBTrainingSession.create_session("model.yml") is None


def test_a_checkpoint_still_waiting_when_the_final_weights_come_is_not_sent(
    hub, tmp_path: Path
) -> None:
    with api(hub) as client:
        model_id = client.post("/v1/models", json={"meta": {"name": "gone"}}).json()["data"]["id"]
    session = session_for(hub, model_id, tmp_path, heartbeats=False)
    session.rate_limits["ckpt"] = 3600.0
    (tmp_path / "first.pt").write_bytes(b"first")
    session.upload_model(0, tmp_path / "first.pt")  # the first one goes at once
    assert session.finish(timeout_s=30)
    session = session_for(hub, model_id, tmp_path, heartbeats=False)
    session._uploader._last_checkpoint = session._uploader.clock()  # the next waits an hour
    (tmp_path / "second.pt").write_bytes(b"second")
    session.upload_model(1, tmp_path / "second.pt")
    (tmp_path / "second.pt").unlink()
    (tmp_path / "best.pt").write_bytes(b"final")
    session.upload_model(1, tmp_path / "best.pt", final=True)
    with api(hub) as client:
        record = client.get(f"/v1/models/{model_id}").json()["data"]
    assert record["status"] == "trained"
    assert httpx.get(record["weights"]).content == b"final"
    assert record["has_last_weights"] is True
    assert httpx.get(record["resume"]).content == b"first"  # "second" was superseded, not sent
    assert session.outbox.pending_models() == []


RUN_THAT_ENDS = """
import gc, json, sys
from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox

url, key, model_id, outbox, ending = sys.argv[1:6]


def train():
    session = HUBTrainingSession(
        model_id, url=url, api_key=key, outbox=Outbox(outbox), progress=False
    )
    for epoch in range(3):
        session.metrics_queue[epoch] = json.dumps({"train/loss": 1.0 / (epoch + 1)})
        session.upload_metrics()
    if ending == "crash":
        raise RuntimeError("CUDA out of memory")
    if ending == "finish":
        session.finish()


train()  # "dropped": returns without finish(), and nothing holds the session any more
gc.collect()
"""


@pytest.mark.parametrize("ending", ["crash", "dropped", "finish"])
def test_a_process_that_exits_mid_run_reports_it_failed_and_sends_its_metrics(
    hub, tmp_path: Path, ending: str
) -> None:
    with api(hub) as client:
        model_id = client.post("/v1/models", json={"meta": {"name": ending}}).json()["data"]["id"]
    outbox = tmp_path / "outbox.db"
    argv = [hub.url, hub.keys["alice"], model_id, str(outbox), ending]
    ended = subprocess.run(
        [sys.executable, "-c", RUN_THAT_ENDS, *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    with api(hub) as client:
        record = client.get(f"/v1/models/{model_id}").json()["data"]
        series = client.get(f"/v1/models/{model_id}/metrics").json()["data"]
    # metrics wait 3 s between sends, so epochs 1 and 2 went out in the flush at the end
    assert [s["data"] for s in series] == [{"0": 1.0, "1": 0.5, "2": 1 / 3}]
    assert Outbox(outbox).counts(hub.url, model_id) == (0, 0)
    if ending == "finish":
        assert ended.returncode == 0, ended.stderr
        assert "reporting it as failed" not in ended.stderr
        assert record["status"] == "training" and record["agents"][0]["state"] == "finished"
        return
    assert "reporting it as failed" in ended.stderr
    assert record["status"] == "failed" and record["agents"][0]["state"] == "failed"
    if ending == "crash":
        assert ended.returncode == 1 and "CUDA out of memory" in ended.stderr
    else:
        assert ended.returncode == 0, ended.stderr


IDLE_RUN = """
import sys
from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox

url, key, model_id, outbox = sys.argv[1:5]
session = HUBTrainingSession(model_id, url=url, api_key=key, outbox=Outbox(outbox), progress=False)
print(session.model_url)  # opened, looked at, and the script ends without training
"""


def test_a_process_that_opens_a_session_and_trains_nothing_leaves_the_model_new(
    hub, tmp_path: Path
) -> None:
    with api(hub) as client:
        model_id = client.post("/v1/models", json={"meta": {"name": "idle"}}).json()["data"]["id"]
    argv = [hub.url, hub.keys["alice"], model_id, str(tmp_path / "outbox.db")]
    ended = subprocess.run(
        [sys.executable, "-c", IDLE_RUN, *argv], capture_output=True, text=True, timeout=120
    )
    assert ended.returncode == 0, ended.stderr
    assert "failed" not in ended.stderr
    with api(hub) as client:
        record = client.get(f"/v1/models/{model_id}").json()["data"]
    assert record["status"] == "new" and record["agents"] == []


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_session_starts_offline_when_the_hub_is_down_and_loses_nothing(
    tmp_path: Path, caplog
) -> None:
    """The README loop trains while the hub is down; the hub gets everything when it is back."""
    data_dir, port = tmp_path / "hub", free_port()
    key = create_user(data_dir, "alice")
    server = spawn_server(data_dir, port)
    with httpx.Client(base_url=server.url, headers={"x-api-key": key}) as client:
        first, second = (
            client.post("/v1/models", json={"meta": {"name": name}}).json()["data"]["id"]
            for name in ("synced", "resumed")
        )
    server.kill(signal.SIGTERM)  # the hub is down from here on: its port is closed
    caplog.set_level(logging.DEBUG, logger="trainhub")
    outbox = Outbox(tmp_path / "outbox.db")
    options = {"api_key": key, "outbox": outbox, "weights_dir": tmp_path / "w", "progress": False}

    session = HUBTrainingSession(f"{server.url}/models/{first}", **options)
    assert session.offline and session.model_id == first and session.model_file is None
    assert session.model_url == f"{server.url}/models/{first}"
    [started] = warnings_of(caplog)
    assert f"the hub at {server.url} does not answer, so this run starts offline" in started
    sha256 = train(session, tmp_path, 3)  # the final upload gives up after a short wait
    assert outbox.pending(server.url, first) == Pending(metrics=3, finals=1)
    assert warnings_of(caplog)[1:] == [
        "trainhub: kept on disk for the next session or `trainhub sync`: "
        "3 epochs of metrics and the final weights"
    ]

    other = HUBTrainingSession(f"{server.url}/models/{second}", **options)
    other.metrics_queue[0] = json.dumps({"train/loss": 0.5})
    other.upload_metrics()
    revived = spawn_server(data_dir, port)
    try:
        assert other.finish(timeout_s=60)  # the hub is back: the same session sends it all
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
        env |= {"TRAINHUB_OUTBOX": str(outbox.path), "TRAINHUB_CONFIG_DIR": str(tmp_path)}
        env |= {"TRAINHUB_URL": server.url, "TRAINHUB_API_KEY": key}
        synced = subprocess.run(
            [*TRAINHUB, "sync"], env=env, capture_output=True, text=True, timeout=120
        )
        assert synced.returncode == 0, synced.stderr
        assert "sent 3 epochs of metrics and the final weights; nothing left" in synced.stdout
        with httpx.Client(base_url=server.url, headers={"x-api-key": key}) as client:
            trained = client.get(f"/v1/models/{first}").json()["data"]
            resumed = client.get(f"/v1/models/{second}").json()["data"]
            series = client.get(f"/v1/models/{second}/metrics").json()["data"]
            weights = httpx.get(trained["weights"]).content
    finally:
        revived.kill(signal.SIGTERM)
    assert trained["status"] == "trained" and hashlib.sha256(weights).hexdigest() == sha256
    assert resumed["status"] == "training" and series[0]["data"] == {"0": 0.5}
    assert outbox.pending_models() == []
