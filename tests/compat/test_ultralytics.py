"""The unchanged ultralytics 8.3.253 + hub-sdk 0.0.25 clients train against a real trainhub server.

Every ultralytics run is a subprocess of the compat venv (`scripts/venvs.sh`), offline, on a
dataset drawn by the test; what the client did is then checked on the server with httpx
(docs/protocol/hub-v1.md §13.1, §13.3-§13.6).
"""

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.compat.ultralytics_support import (
    RUN_TIMEOUT,
    Run,
    ShapesDataset,
    Workspace,
    create_url_model,
    data_of,
    download,
    hub_client,
    metric_epochs,
    sha256,
    upload_dataset,
)
from tests.servers import RunningServer

pytestmark = [pytest.mark.compat, pytest.mark.e2e]
# Test timeouts cover the test body only (func_only): the fixtures are bounded by their own
# subprocess timeouts, and building the compat venv on a fresh machine takes minutes.

DETECT_EPOCH_KEYS = {
    "train/box_loss",
    "train/cls_loss",
    "train/dfl_loss",
    "metrics/precision(B)",
    "metrics/recall(B)",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
}
MODEL_INFO_KEYS = {"model/parameters", "model/GFLOPs", "model/speed_PyTorch(ms)"}


def explain(run: Run, server: RunningServer) -> str:
    server_tail = "\n".join(server.log().splitlines()[-40:])
    return f"{run.describe()}\n--- server log tail ---\n{server_tail}"


def finished(run: Run, server: RunningServer) -> dict[str, Any]:
    """Assert that a scenario ran to its RESULT line without leaving the machine."""
    assert run.returncode == 0, explain(run, server)
    assert run.result is not None, explain(run, server)
    assert run.result["blocked"] == [], f"outbound traffic attempted: {run.result['blocked']}"
    return run.result


def file_name(url: str) -> str:
    """The name ultralytics gives a download: last path segment, query cut.

    See docs/protocol/hub-v1.md §9.1.
    """
    return unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])


def without_data(train_args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in train_args.items() if k != "data"}


@dataclass
class UrlTraining:
    """A HUB model created with httpx on a server-hosted dataset and trained by URL."""

    model_id: str
    dataset_id: str
    train_args: dict[str, Any]
    workspace: Workspace
    run: Run


@pytest.fixture(scope="module")
def url_trained(
    server: RunningServer, shapes: ShapesDataset, tmp_path_factory: pytest.TempPathFactory
) -> UrlTraining:
    """Upload shapes.zip, create a 2-epoch model on it, `YOLO(url).train()`.

    See docs/protocol/hub-v1.md §13.4.
    """
    with hub_client(server.url, server.keys["alice"]) as client:
        dataset_id = upload_dataset(client, shapes.archive)
        model_id = create_url_model(client, dataset_id, name="shapes-by-url", epochs=2)
        train_args = data_of(client.get(f"/v1/models/{model_id}"))["train_args"]
    workspace = Workspace.create(tmp_path_factory.mktemp("train-by-url"))
    run = workspace.run(
        server.url,
        "train-url",
        "--url",
        f"{server.url}/models/{model_id}",
        "--api-key",
        server.keys["alice"],
    )
    return UrlTraining(
        model_id=model_id,
        dataset_id=dataset_id,
        train_args=train_args,
        workspace=workspace,
        run=run,
    )


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_hub_login_saves_a_valid_key_and_refuses_a_bad_one(
    server: RunningServer, tmp_path: Path
) -> None:
    workspace = Workspace.create(tmp_path)
    good, bad = server.keys["alice"], "ul" + "0" * 40
    run = workspace.run(server.url, "login", bad, good, bad + "1")
    outcomes = finished(run, server)["outcomes"]

    assert [o["ok"] for o in outcomes] == [False, True, False]
    assert [o["saved"] for o in outcomes] == ["", good, good], "a refused key must not be saved"
    assert workspace.settings["api_key"] == good
    refused = httpx.post(f"{server.url}/v1/auth", headers={"x-api-key": bad}, timeout=10)
    assert refused.json()["success"] is False, (
        "docs/protocol/hub-v1.md §4.2: invalid keys get JSON success=false"
    )


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_local_training_while_logged_in_creates_a_hub_model_and_uploads_its_weights(
    server: RunningServer, shapes: ShapesDataset, alice: httpx.Client, tmp_path: Path
) -> None:
    workspace = Workspace.create(tmp_path)
    run = workspace.run(
        server.url,
        "train-local",
        "--data",
        str(shapes.local_yaml),
        "--epochs",
        "2",
        "--login",
        server.keys["alice"],
    )
    result = finished(run, server)
    assert result["logged_in"] is True
    model_id = result["hub_model_id"]
    assert model_id, f"the HUB callbacks opened no session\n{explain(run, server)}"

    listed = data_of(alice.get("/v1/models", params={"limit": 10}))
    assert model_id in {m["id"] for m in listed["results"]}
    with hub_client(server.url, server.keys["bob"]) as bob:
        bobs = data_of(bob.get("/v1/models", params={"limit": 10}))
        assert model_id not in {m["id"] for m in bobs["results"]}, (
            "models are private (docs/protocol/hub-v1.md §16.7)"
        )
    model = data_of(alice.get(f"/v1/models/{model_id}"))
    assert model["meta"]["name"] == "yolo11n.yaml"
    assert model["status"] == "trained"
    assert model["has_best_weights"] is True
    assert file_name(model["weights"]).endswith(".pt")
    assert sha256(download(model["weights"])) == result["best_sha256"], (
        "the downloaded weights differ from the local best.pt"
    )
    # Runs this short send no metrics at all (docs/protocol/hub-v1.md §7.2); the read-back still
    # answers.
    assert isinstance(data_of(alice.get(f"/v1/models/{model_id}/metrics")), list)


@pytest.mark.timeout(60, func_only=True)
def test_training_a_hub_model_by_url_uses_the_server_dataset_and_reports_every_epoch(
    server: RunningServer, shapes: ShapesDataset, alice: httpx.Client, url_trained: UrlTraining
) -> None:
    train_args = url_trained.train_args
    assert file_name(train_args["data"]).endswith(".zip"), train_args
    assert {k: train_args.get(k) for k in ("epochs", "imgsz", "batch")} == {
        "epochs": 2,
        "imgsz": 64,
        "batch": 4,
    }
    assert sha256(download(train_args["data"])) == sha256(shapes.archive.read_bytes())

    result = finished(url_trained.run, server)
    assert result["session_model_id"] == url_trained.model_id
    assert result["resume"] is False
    # ultralytics trains with the server's train_args (the signed URL may differ per read).
    assert without_data(result["train_args"]) == without_data(train_args)
    assert file_name(result["train_args"]["data"]) == file_name(train_args["data"])
    assert result["model_file"] == "yolo11n.yaml"
    datasets_dir = (url_trained.workspace.cwd / "datasets").resolve()
    assert Path(result["data"]).is_relative_to(datasets_dir), "trained on the server's archive"
    assert result["epochs_seen"] == [0, 1]
    assert result["args"]["device"] == "cpu"
    assert result["args"]["workers"] == 0, "ultralytics forces workers=0 on CPU"

    model = data_of(alice.get(f"/v1/models/{url_trained.model_id}"))
    assert model["status"] == "trained"
    assert model["has_best_weights"] is True
    assert sha256(download(model["weights"])) == result["best_sha256"]
    epochs = metric_epochs(alice, url_trained.model_id)
    for key in DETECT_EPOCH_KEYS:
        assert epochs.get(key) == {"0", "1"}, (key, epochs)
    for key in MODEL_INFO_KEYS:
        assert epochs.get(key) == {"0"}, (key, epochs)


@pytest.mark.timeout(2 * RUN_TIMEOUT + 120, func_only=True)
def test_an_interrupted_hub_training_resumes_from_its_uploaded_checkpoint(
    server: RunningServer, shapes: ShapesDataset, alice: httpx.Client, tmp_path: Path
) -> None:
    dataset_id = upload_dataset(alice, shapes.archive, name="shapes-resume")
    model_id = create_url_model(alice, dataset_id, name="shapes-resume", epochs=3)
    url = f"{server.url}/models/{model_id}"

    # First machine: train by URL, upload the epoch-0 checkpoint, then die before epoch 1 ends.
    first = Workspace.create(tmp_path / "first")
    run = first.run(
        server.url,
        "train-url",
        "--url",
        url,
        "--api-key",
        server.keys["alice"],
        "--checkpoint-every-epoch",
        "--stop-after-epoch",
        "0",
    )
    stopped = finished(run, server)
    assert stopped["server_confirmed"] is True, explain(run, server)
    model = data_of(alice.get(f"/v1/models/{model_id}"))
    assert model["status"] == "training", (
        "docs/protocol/hub-v1.md §16.5: new -> training on the first heartbeat"
    )
    assert model["has_last_weights"] is True
    # Resume files land in the weights dir shared by all models: the name must be unique
    # (docs/protocol/hub-v1.md §10).
    assert file_name(model["resume"]).endswith(".pt")
    assert file_name(model["resume"]) != "last.pt"
    assert sha256(download(model["resume"])) == stopped["last_sha256"]
    assert file_name(model["data"]).endswith(".zip")
    assert metric_epochs(alice, model_id)["train/box_loss"] == {"0"}

    # Second machine: its dataset copy is gone, so the resume also fetches `data` again
    # (docs/protocol/hub-v1.md §13.5).
    shutil.rmtree(first.cwd / "datasets")
    second = Workspace.create(tmp_path / "second")
    run = second.run(server.url, "train-url", "--url", url, "--login", server.keys["alice"])
    resumed = finished(run, server)
    assert resumed["logged_in"] is True
    assert resumed["resume"] is True
    assert without_data(resumed["train_args"]) == {"resume": True}
    assert file_name(resumed["train_args"]["data"]) == file_name(model["data"])
    assert file_name(resumed["model_file"]) == file_name(model["resume"])
    assert resumed["ckpt_sha256"] == stopped["last_sha256"]
    assert Path(resumed["ckpt_path"]).is_relative_to((second.cwd / "weights").resolve())
    assert Path(resumed["data"]).is_relative_to((second.cwd / "datasets").resolve())
    assert resumed["epochs_seen"] == [1, 2]
    assert resumed["args"]["epochs"] == 3

    model = data_of(alice.get(f"/v1/models/{model_id}"))
    assert model["status"] == "trained"
    assert model["has_best_weights"] is True
    assert sha256(download(model["weights"])) == resumed["best_sha256"]
    epochs = metric_epochs(alice, model_id)
    for key in DETECT_EPOCH_KEYS:
        assert epochs.get(key) == {"0", "1", "2"}, (key, epochs)


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_a_trained_hub_model_loads_by_url_and_predicts(
    server: RunningServer, shapes: ShapesDataset, url_trained: UrlTraining, tmp_path: Path
) -> None:
    trained = finished(url_trained.run, server)
    workspace = Workspace.create(tmp_path)
    url = f"{server.url}/models/{url_trained.model_id}"
    run = workspace.run(
        server.url,
        "predict",
        "--url",
        url,
        "--api-key",
        server.keys["alice"],
        "--image",
        str(shapes.image("val", 0)),
    )
    result = finished(run, server)

    ckpt = Path(result["ckpt_path"])
    assert ckpt.parent == (workspace.cwd / "weights" / "hub" / url_trained.model_id).resolve()
    assert ckpt.suffix == ".pt"
    assert result["ckpt_sha256"] == trained["best_sha256"]
    assert result["has_session"] is False, (
        "a trained model opens no training session (docs/protocol/hub-v1.md §13.6)"
    )
    assert result["task"] == "detect"
    assert result["results"] == 1
    assert result["shape"] == [64, 64]
