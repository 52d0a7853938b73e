"""A run and its weights move between replicas: what one replica stores, the other serves.

A model created on A is trained through B by trainhub's own HUBTrainingSession (heartbeats,
metrics per epoch, checkpoints, final weights) and read back whole from A; weights uploaded to
A download from B byte for byte, through the signed link A issued.
"""

import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.replicas.stack import Replicas
from trainhub import HubClient, HUBTrainingSession
from trainhub.client.outbox import Outbox
from trainhub.client.session import AGENT_NAME

EPOCHS = 3


def new_model(url: str, key: str) -> str:
    """Create a model as ultralytics does for `yolo11n.yaml`; return its id."""
    payload = {
        "meta": {"name": "yolo11n.yaml"},
        "config": {"epochs": EPOCHS, "imageSize": 64, "batchSize": 4, "patience": 100},
        "lineage": {"architecture": {"name": "yolo11n"}, "parent": {}},
        "dataset": {"name": "shapes.yaml"},
    }
    with HubClient(url, key) as client:
        return client.create_model(payload)


def test_a_model_created_on_a_is_trained_through_b_and_read_back_from_a(
    replicas: Replicas, tmp_path: Path
) -> None:
    key = replicas.new_user("trainer")
    model_id = new_model(replicas.a.url, key)
    session = HUBTrainingSession(
        f"{replicas.b.url}/models/{model_id}",
        api_key=key,
        outbox=Outbox(tmp_path / "outbox.db"),
        weights_dir=tmp_path / "weights",
        progress=False,
    )
    assert session.model_url == f"{replicas.b.url}/models/{model_id}"
    for epoch in range(EPOCHS):
        session.metrics_queue[epoch] = json.dumps({"train/loss": 1.0 / (epoch + 1)})
        session.upload_metrics()
        (tmp_path / "last.pt").write_bytes(os.urandom(40_000))
        session.upload_model(epoch, tmp_path / "last.pt")
    best = os.urandom(150_000)
    (tmp_path / "best.pt").write_bytes(best)
    session.metrics_queue[EPOCHS - 1] = json.dumps({"metrics/mAP50-95(B)": 0.5})
    session.upload_model(EPOCHS - 1, tmp_path / "best.pt", map=0.5, final=True)
    assert session.outbox.pending_models() == [], "the session left uploads on disk"

    with httpx.Client(base_url=replicas.a.url, headers={"x-api-key": key}, timeout=30) as on_a:
        record = on_a.get(f"/v1/models/{model_id}").json()["data"]
        series = {
            s["meta"]["name"]: s["data"]
            for s in on_a.get(f"/v1/models/{model_id}/metrics").json()["data"]
        }
        weights = on_a.get(record["weights"]).content
    assert record["status"] == "trained", record
    assert series["train/loss"] == {str(e): 1.0 / (e + 1) for e in range(EPOCHS)}
    assert series["metrics/mAP50-95(B)"] == {str(EPOCHS - 1): 0.5}
    assert hashlib.sha256(weights).hexdigest() == hashlib.sha256(best).hexdigest()
    # the heartbeats went to B: A knows the agent, and that it finished
    assert [(a["name"], a["state"]) for a in record["agents"]] == [(AGENT_NAME, "finished")]


def test_weights_uploaded_to_a_download_from_b_byte_for_byte(
    replicas: Replicas, tmp_path: Path
) -> None:
    key = replicas.new_user("uploader")
    model_id = new_model(replicas.a.url, key)
    best = tmp_path / "best.pt"
    best.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks, not a round size
    sha256 = hashlib.sha256(best.read_bytes()).hexdigest()
    with HubClient(replicas.a.url, key) as on_a:
        stored = on_a.upload_weights(model_id, best, epoch=EPOCHS - 1, final=True, map=0.5)
        link = on_a.get_model(model_id).weights
    assert stored.sha256 == sha256
    assert link is not None and link.startswith(f"{replicas.a.url}/files/"), link

    # A's signed link, sent to B: same secret, same database, same bucket
    on_b = httpx.get(replicas.b.url + urlsplit(link).path, timeout=60)
    assert on_b.status_code == 200, on_b.text
    assert hashlib.sha256(on_b.content).hexdigest() == sha256
    assert on_b.headers["etag"].strip('"') == sha256
    # and B's own record links the same bytes
    with HubClient(replicas.b.url, key) as client:
        downloaded = client.download(client.get_model(model_id).weights or "", tmp_path / "b.pt")
    assert hashlib.sha256((tmp_path / "b.pt").read_bytes()).hexdigest() == sha256 == downloaded
