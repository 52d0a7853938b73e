"""trainhub's integrations train with the real frameworks and report everything to a real hub.

Each run is a subprocess of a framework venv (scripts/venvs.sh): ultralytics 8.3 (with its
stock HUB callbacks switched on, to prove nothing is sent twice), ultralytics 8.4, Lightning,
Transformers, and the plain-loop example of docs/integrations.md. Tiny models, CPU, offline. What
the run sent is then read back from the hub with httpx (docs/integrations.md).
"""

import hashlib
import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.ultralytics_support import (
    COMPAT_PYTHON,
    ROOT,
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
from tests.servers import RunningServer, free_port, spawn_server, start_server
from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox

pytestmark = [pytest.mark.compat, pytest.mark.e2e]
# Test timeouts cover the test body only (func_only): building the venvs on a fresh machine takes
# minutes, and every subprocess has its own timeout.

ML84_PYTHON = Path(os.environ.get("ML84_VENV") or ROOT / ".venv-ml84") / "bin" / "python"
RUNS_SCRIPT = Path(__file__).resolve().parent / "integrations_runs.py"
RUN_TIMEOUT = 300.0
RESULT_PREFIX = "RESULT "
LOG_LINE = re.compile(r"^LOG (?P<level>[A-Z]+) (?P<logger>\S+): (?P<message>.*)$")

YOLO_EPOCH_KEYS = {"train/box_loss", "metrics/mAP50-95(B)", "val/box_loss"}
YOLO_MODEL_INFO = {"model/parameters", "model/GFLOPs", "model/speed_PyTorch(ms)"}


@dataclass
class Training:
    """One finished run of integrations_runs.py."""

    args: list[str]
    returncode: int
    output: str
    result: dict[str, Any] | None
    seconds: float
    outbox: Path

    def logs(self, level: str = "WARNING", prefix: str = "trainhub") -> list[str]:
        """The trainhub log lines of `level` (`LOG <LEVEL> <logger>: <message>`)."""
        found = (LOG_LINE.match(line) for line in self.output.splitlines())
        return [
            f"{m['logger']}: {m['message']}"
            for m in found
            if m and m["level"] == level and m["logger"].startswith(prefix)
        ]

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-120:])
        return (
            f"integrations_runs.py {' '.join(self.args)} exited {self.returncode} after "
            f"{self.seconds:.0f} s; output tail:\n{tail}"
        )

    @property
    def model_id(self) -> str:
        assert self.result is not None and self.result["model_url"], self.describe()
        return str(self.result["model_url"]).rstrip("/").rsplit("/", 1)[-1]


def train(
    python: Path, base: Path, hub_url: str, api_key: str, scenario: str, *args: str
) -> Training:
    """Run one scenario in its venv, as one user's machine; never raises on failure."""
    workspace = Workspace.create(base)
    outbox = base / "outbox.sqlite3"
    env = workspace.env(hub_url)
    env.update(
        {
            "TRAINHUB_URL": hub_url,
            "TRAINHUB_API_KEY": api_key,
            "TRAINHUB_OUTBOX": str(outbox),
            "TRAINHUB_CONFIG_DIR": str(base / "trainhub-config"),
            "HF_HOME": str(base / "hf"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    command = [str(python), str(RUNS_SCRIPT), scenario, *args]
    log = base / "run.log"
    started = time.monotonic()
    with log.open("wb") as out:
        try:
            returncode = subprocess.run(
                command,
                cwd=workspace.cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=RUN_TIMEOUT,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = -9
    output = log.read_text(errors="replace")
    results = [ln[len(RESULT_PREFIX) :] for ln in output.splitlines() if ln.startswith("RESULT ")]
    return Training(
        args=[scenario, *args],
        returncode=returncode,
        output=output,
        result=json.loads(results[-1]) if results else None,
        seconds=time.monotonic() - started,
        outbox=outbox,
    )


def finished(run: Training, server: RunningServer | None = None) -> dict[str, Any]:
    """Assert the run ended normally, offline, with no trainhub thread left."""
    why = run.describe() + (f"\n--- server log ---\n{server.log()[-5000:]}" if server else "")
    assert run.returncode == 0, why
    assert run.result is not None, why
    assert run.result["blocked"] == [], f"outbound traffic attempted: {run.result['blocked']}"
    assert run.result["threads"] == [], f"threads left behind: {run.result['threads']}"
    return run.result


def pending_models(outbox_path: Path) -> list[tuple[str, str]]:
    """Return what is still in an outbox file (none when the file was never made)."""
    if not outbox_path.exists():
        return []
    outbox = Outbox(outbox_path)
    try:
        return outbox.pending_models()
    finally:
        outbox.close()


def model_count(client: httpx.Client) -> int:
    return int(data_of(client.get("/v1/models", params={"limit": 100}))["total"])


def assert_reported(
    client: httpx.Client, run: Training, epochs: int, every_epoch: set[str]
) -> dict[str, dict[str, Any]]:
    """Assert on the hub: trained, each epoch's metrics once, final weights, agent finished.

    Return the metric series (name -> {epoch: value}).
    """
    result = finished(run)
    record = data_of(client.get(f"/v1/models/{run.model_id}"))
    assert record["status"] == "trained", (record, run.describe())
    series = {
        item["meta"]["name"]: item["data"]
        for item in data_of(client.get(f"/v1/models/{run.model_id}/metrics"))
    }
    all_epochs = {str(e) for e in range(epochs)}
    missing = every_epoch - set(series)
    assert not missing, f"metrics never sent: {missing}; got {sorted(series)}"
    for name in every_epoch:
        assert set(series[name]) == all_epochs, (name, series[name], run.describe())
    stray = {name: set(s) - all_epochs for name, s in series.items() if set(s) - all_epochs}
    assert not stray, f"metrics under epochs that were never trained: {stray}"
    assert sha256(download(record["weights"])) == result["best_sha256"]
    assert [agent["state"] for agent in record["agents"]] == ["finished"], record["agents"]
    assert pending_models(run.outbox) == [], "the outbox was not emptied"
    return series


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_ultralytics_83_reports_every_epoch_and_silences_the_stock_hub_callbacks(
    server: RunningServer, alice: httpx.Client, shapes: ShapesDataset, tmp_path: Path
) -> None:
    before = model_count(alice)
    key = server.keys["alice"]
    run = train(
        COMPAT_PYTHON,
        tmp_path,
        server.url,
        key,
        "yolo",
        "--data",
        str(shapes.local_yaml),
        "--epochs",
        "3",
        "--stock-hub-key",  # 8.3's own HUB callbacks are live and point at the same hub
        key,
    )
    result = finished(run, server)
    assert result["ultralytics"] == "8.3.253"
    assert Path(result["save_dir"]).is_relative_to(tmp_path), result["save_dir"]
    left = {entry.split(":")[0] for entry in result["stock_hub_callbacks_left"]}
    assert left == {"on_train_start", "on_val_start", "on_predict_start", "on_export_start"}, (
        "only the stock analytics callbacks stay"
    )
    assert result["hub_session_of_trainer"] == "None", "the stock HUB session was opened"
    series = assert_reported(alice, run, 3, YOLO_EPOCH_KEYS)
    assert {name for name in series if set(series[name]) == {"0"}} >= YOLO_MODEL_INFO
    assert model_count(alice) == before + 1, "a second hub model: the stock session ran too"
    record = data_of(alice.get(f"/v1/models/{run.model_id}"))
    assert record["train_args"]["epochs"] == 3 and record["cfg"] == "yolo11n.yaml"


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_ultralytics_84_trainer_reports_every_epoch_to_a_named_hub_model(
    server: RunningServer, alice: httpx.Client, shapes: ShapesDataset, tmp_path: Path
) -> None:
    dataset_id = upload_dataset(alice, shapes.archive, name="shapes-84")
    model_id = create_url_model(alice, dataset_id, name="yolo-84", epochs=3)
    before = model_count(alice)
    run = train(
        ML84_PYTHON,
        tmp_path,
        server.url,
        server.keys["alice"],
        "yolo",
        "--data",
        str(shapes.local_yaml),
        "--epochs",
        "3",
        "--hub-model",
        f"{server.url}/models/{model_id}",
        "--attach",  # to a DetectionTrainer after its __init__ (8.3 covers YOLO models)
        "trainer",
    )
    result = finished(run, server)
    assert result["ultralytics"].startswith("8.4.")
    assert Path(result["save_dir"]).is_relative_to(tmp_path), result["save_dir"]
    assert run.model_id == model_id
    # 8.4 numbers the final validation one past the last epoch; it lands on the last epoch
    series = assert_reported(alice, run, 3, YOLO_EPOCH_KEYS | {"metrics/mAP50(B)"})
    assert {name for name in series if set(series[name]) == {"0"}} >= YOLO_MODEL_INFO
    assert model_count(alice) == before


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_lightning_logger_reports_every_epoch_and_the_best_checkpoint(
    server: RunningServer, alice: httpx.Client, tmp_path: Path
) -> None:
    run = train(COMPAT_PYTHON, tmp_path, server.url, server.keys["alice"], "lightning",
                "--epochs", "3")  # fmt: skip
    finished(run, server)
    series = assert_reported(alice, run, 3, {"train_loss", "val_loss"})
    record = data_of(alice.get(f"/v1/models/{run.model_id}"))
    assert record["meta"]["name"] == "TinyRegressor"  # the module's class, no file suffix
    assert record["train_args"]["epochs"] == 3 and record["train_args"]["batch"] == 8
    assert min(series["val_loss"].values()) == pytest.approx(run.result["best_score"], rel=1e-4)


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_transformers_callback_reports_every_epoch_and_the_best_weights(
    server: RunningServer, alice: httpx.Client, tmp_path: Path
) -> None:
    run = train(COMPAT_PYTHON, tmp_path, server.url, server.keys["alice"], "transformers",
                "--epochs", "2")  # fmt: skip
    finished(run, server)
    assert_reported(alice, run, 2, {"loss", "eval_loss"})
    record = data_of(alice.get(f"/v1/models/{run.model_id}"))
    assert record["meta"]["name"] == "BertForSequenceClassification"


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_the_plain_loop_example_of_the_docs_reports_every_epoch(
    server: RunningServer, alice: httpx.Client, tmp_path: Path
) -> None:
    run = train(COMPAT_PYTHON, tmp_path, server.url, server.keys["alice"], "loop")
    finished(run, server)
    assert_reported(alice, run, 3, {"train/loss"})


@pytest.mark.timeout(RUN_TIMEOUT + 60, func_only=True)
def test_an_unreachable_hub_leaves_training_alone_with_one_warning(
    framework_venvs: None, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    run = train(COMPAT_PYTHON, tmp_path, nowhere, "k" * 42, "lightning", "--epochs", "2")
    result = finished(run)
    assert result["model_url"] is None
    gave_up = [w for w in run.logs() if "training goes on without the hub" in w]
    assert len(gave_up) == 1, run.describe()
    # whatever else was said is the client's retry log while it tried to reach the hub
    others = [w for w in run.logs() if w not in gave_up]
    assert all("retry" in w for w in others), others
    assert pending_models(run.outbox) == []


@pytest.mark.timeout(2 * RUN_TIMEOUT + 120, func_only=True)
def test_a_hub_that_dies_mid_run_loses_nothing(framework_venvs: None, tmp_path: Path) -> None:
    """The hub is killed as training starts; the run ends normally with everything on disk,
    and the next session for the model, once the hub is back, sends all of it."""
    with start_server(tmp_path / "first") as server:
        key = server.keys["alice"]
        port = int(server.url.rsplit(":", 1)[1])
        run = train(COMPAT_PYTHON, tmp_path / "run", server.url, key, "lightning",
                    "--epochs", "3", "--flush-timeout", "3",
                    "--kill-server-pid", str(server.proc.pid))  # fmt: skip
        result = finished(run)
        server.proc.wait(timeout=30)
        model_id = run.model_id
        outbox = Outbox(run.outbox)
        metrics, uploads = outbox.counts(server.url, model_id)
        assert metrics == 3 and uploads >= 1, (metrics, uploads, run.describe())
        assert any("kept on disk" in w for w in run.logs()), run.describe()

        revived = spawn_server(server.data_dir, port)
        try:
            session = HUBTrainingSession(
                f"{server.url}/models/{model_id}",
                api_key=key,
                outbox=outbox,
                weights_dir=tmp_path / "weights",
                progress=False,
            )
            assert session.finish(timeout_s=60)
            with hub_client(revived.url, key) as client:
                record = data_of(client.get(f"/v1/models/{model_id}"))
                epochs = metric_epochs(client, model_id)
                weights = download(record["weights"])
        finally:
            revived.kill()
    assert record["status"] == "trained"
    assert epochs["train_loss"] == {"0", "1", "2"} and epochs["val_loss"] == {"0", "1", "2"}
    assert hashlib.sha256(weights).hexdigest() == result["best_sha256"]
    assert outbox.pending_models() == []
    outbox.close()
