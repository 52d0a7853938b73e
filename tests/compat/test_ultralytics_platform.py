"""The unchanged ultralytics 8.4.190 reports to a real trainhub server through its callback.

Only the documented setup: `ULTRALYTICS_PLATFORM_URL`, a key (`ULTRALYTICS_API_KEY`, or saved by
`yolo login`) and `project=` (docs/protocol/platform.md §1, §9). Each run is the `yolo` command of
the 8.4 venv in a subprocess, offline, on CPU, on a dataset drawn by the test; one at a time. What
it did is read back from the hub with httpx: through the HUB v1 API, as any client would.
"""

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.platform_support import (
    ML84_VENV,
    NO_PLOTS,
    PYTHON,
    TOY,
    YOLO,
    Finished,
    Machine,
    epochs_of,
    models_named,
    runs_of,
    wait_for,
)
from tests.compat.ultralytics_support import (
    ROOT,
    ShapesDataset,
    data_of,
    download,
    hub_client,
    upload_dataset,
)
from tests.servers import RunningServer, start_server

pytestmark = [pytest.mark.compat, pytest.mark.e2e]

PROJECT = "alice/shapes"
RUN_WAIT_S = 240.0
# short silences, so a killed run is seen stale and offline within seconds (defaults: 60 s, 600 s)
HUB_ENV = {"TRAINHUB_PLATFORM_MIN_SILENCE_S": "2", "TRAINHUB_PLATFORM_FIRST_EPOCH_SILENCE_S": "60"}


@pytest.fixture(scope="module")
def ml84() -> None:
    """Build or verify the 8.4 venv with scripts/venvs.sh, unless ML84_VENV names one."""
    if "ML84_VENV" not in os.environ:
        proc = subprocess.run(
            ["bash", str(ROOT / "scripts" / "venvs.sh")],
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"scripts/venvs.sh failed:\n{proc.stdout}\n{proc.stderr}"
    assert YOLO.is_file(), f"no yolo command in {ML84_VENV}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory, ml84: None) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("hub"), extra_env=HUB_ENV) as running:
        yield running


@pytest.fixture
def alice(hub: RunningServer) -> Iterator[httpx.Client]:
    with hub_client(hub.url, hub.keys["alice"]) as client:
        yield client


@pytest.fixture
def key(hub: RunningServer) -> str:
    """alice's key spelled as ultralytics 8.4 keeps it."""
    return "ul_" + hub.keys["alice"][2:]


@pytest.fixture
def machine(tmp_path: Path, hub: RunningServer) -> Machine:
    return Machine.create(tmp_path / "machine", hub.url)


@dataclass
class Tracked:
    """The module's first run: two epochs with the two variables and project=."""

    machine: Machine
    done: Finished
    model: dict[str, Any]


@pytest.fixture(scope="module")
def tracked(
    tmp_path_factory: pytest.TempPathFactory, hub: RunningServer, shapes: ShapesDataset
) -> Tracked:
    machine = Machine.create(tmp_path_factory.mktemp("tracked"), hub.url)
    done = machine.run(
        *train_args(shapes, "tracked", 2, plots=True), key="ul_" + hub.keys["alice"][2:]
    )
    assert done.returncode == 0, done.describe()
    with hub_client(hub.url, hub.keys["alice"]) as client:
        return Tracked(machine, done, the_model(client, "tracked"))


def train_args(
    shapes: ShapesDataset, name: str, epochs: int, *extra: str, plots: bool = False
) -> tuple[str, ...]:
    """The arguments of a toy run; with `plots` it draws its plots, as a user's run does."""
    return (
        "train",
        *TOY,
        *(() if plots else NO_PLOTS),
        f"data={shapes.local_yaml}",
        f"epochs={epochs}",
        f"project={PROJECT}",
        f"name={name}",
        *extra,
    )


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def the_model(client: httpx.Client, name: str) -> dict:
    [model] = [m for m in models_named(client, name) if m["meta"]["name"] == name]
    return model


def loads_in_ultralytics(path: Path, machine: Machine) -> list[str]:
    """Load weights with the 8.4 venv's YOLO() and return its class names."""
    code = (
        "import json, sys\nfrom ultralytics import YOLO\n"
        "print(json.dumps(list(YOLO(sys.argv[1]).names.values())))"
    )
    done = subprocess.run(
        [str(PYTHON), "-c", code, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=machine.env(None),
        cwd=machine.cwd,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


# ---------------------------------------------------------------------------------- tracked run


def test_a_run_with_two_variables_and_project_is_an_ordinary_trained_model(
    tracked: Tracked, alice: httpx.Client, hub: RunningServer
) -> None:
    machine, done = tracked.machine, tracked.done
    assert f"View model at {hub.url}/models/" in done.output, done.describe()
    assert "Model will not be available" not in done.output, done.describe()
    model = the_model(alice, "tracked")
    assert model["status"] == "trained", model
    assert model["project"]["name"] == "shapes"
    assert model["epochs"] == 2 and model["imgsz"] == 64
    assert epochs_of(alice, model["id"]) == {0, 1}  # the final validation is no epoch
    series = {s["meta"]["name"] for s in data_of(alice.get(f"/v1/models/{model['id']}/metrics"))}
    assert {"train/box_loss", "val/box_loss", "metrics/mAP50-95(B)", "lr"} <= series
    assert {"system/cpu", "system/ram", "model/parameters"} <= series
    [run] = runs_of(alice, model["id"])
    assert run["state"] == "completed" and run["finalEpoch"] == 2
    assert "metrics/mAP50-95(B)" in run["finalMetrics"]
    assert not any(name.startswith("val/") for name in run["finalMetrics"])
    assert run["environment"]["ultralyticsVersion"] == "8.4.190"
    assert run["classNames"] == ["box"]
    assert {"confusion_matrix", "pr_curve", "f1_curve"} <= {p["type"] for p in run["plots"]}
    console = alice.get(f"/v1/models/{model['id']}/console").text
    assert "Starting training for 2 epochs" in console and "\x1b[" not in console
    best = machine.save_dir(PROJECT, "tracked") / "weights" / "best.pt"
    downloaded = machine.base / "from-hub.pt"
    downloaded.write_bytes(download(model["weights"]))
    assert sha256_of(downloaded) == sha256_of(best)
    assert loads_in_ultralytics(downloaded, machine) == ["box"]


def test_yolo_login_checks_and_saves_the_key_that_then_reports_runs(
    machine: Machine, shapes: ShapesDataset, alice: httpx.Client, key: str
) -> None:
    refused = machine.run("login", "ul_" + "0" * 40)
    assert refused.returncode != 0 and "Invalid API key" in refused.output, refused.describe()
    settings = machine.config_dir / "Ultralytics" / "settings.json"
    assert json.loads(settings.read_text())["api_key"] == ""
    done = machine.run("login", key)
    assert done.returncode == 0, done.describe()
    assert json.loads(settings.read_text())["api_key"] == key
    trained = machine.run(*train_args(shapes, "saved-key", 1))  # no ULTRALYTICS_API_KEY
    assert trained.returncode == 0, trained.describe()
    assert the_model(alice, "saved-key")["status"] == "trained"


# ---------------------------------------------------------------------------------- ul://


def test_ul_uris_train_from_the_hubs_model_and_a_dataset_hosted_on_the_hub(
    tracked: Tracked, machine: Machine, shapes: ShapesDataset, alice: httpx.Client, key: str
) -> None:
    upload_dataset(alice, shapes.archive, name="shapes")
    args = [a for a in TOY + NO_PLOTS if not a.startswith("model=")]
    done = machine.run(
        "train",
        "model=ul://alice/shapes/tracked",
        "data=ul://alice/datasets/shapes",
        *args,
        "epochs=1",
        f"project={PROJECT}",
        "name=from-ul",
        key=key,
    )
    assert done.returncode == 0, done.describe()
    [cached] = (machine.base / "weights" / "alice" / "shapes" / "tracked").glob("*.pt")
    best = tracked.machine.save_dir(PROJECT, "tracked") / "weights" / "best.pt"
    assert sha256_of(cached) == sha256_of(best)  # the hub's weights, byte for byte
    [converted] = (machine.base / "datasets").glob("shapes-*/data.yaml")
    assert len(list(converted.parent.glob("images/train/*"))) == 8
    assert len(list(converted.parent.glob("images/val/*"))) == 4
    model = the_model(alice, "from-ul")
    assert model["status"] == "trained"
    [run] = runs_of(alice, model["id"])
    assert run["trainArgs"]["model"] == "ul://alice/shapes/tracked"
    assert run["trainArgs"]["data"] == "ul://alice/datasets/shapes"
    assert run["classNames"] == ["box"]


# ---------------------------------------------------------------------------------- kill -9


def test_a_run_killed_with_sigkill_goes_silent_and_resume_continues_the_same_model(
    machine: Machine, shapes: ShapesDataset, alice: httpx.Client, key: str
) -> None:
    running = machine.start(*train_args(shapes, "resumable", 12), key=key)
    last = machine.save_dir(PROJECT, "resumable") / "weights" / "last.pt"
    try:
        model = wait_for(
            "the hub to hold epoch 1",
            lambda: next(
                (m for m in models_named(alice, "resumable") if 1 in epochs_of(alice, m["id"])),
                None,
            ),
            RUN_WAIT_S,
            running.output,
        )
    finally:
        killed = running.kill_between_saves(last)
    assert killed.returncode == -9, killed.describe()
    model_id = model["id"]
    before = epochs_of(alice, model_id)
    assert len(before) < 12, "the run ended before it could be killed"
    wait_for(
        "the killed run to be seen offline",
        lambda: runs_of(alice, model_id)[-1]["liveness"] == "offline",
        120,
        lambda: json.dumps(runs_of(alice, model_id)[-1], indent=1)[:2000],
    )
    assert data_of(alice.get(f"/v1/models/{model_id}"))["status"] == "training"
    resumed = machine.run("train", "resume", f"model={last}", key=key)
    assert resumed.returncode == 0, resumed.describe()
    assert [m["id"] for m in models_named(alice, "resumable")] == [model_id]
    record = data_of(alice.get(f"/v1/models/{model_id}"))
    assert record["status"] == "trained" and record["has_best_weights"]
    # ultralytics saves last.pt before it sends that epoch's metrics, once, from a thread: a kill
    # between the two loses that epoch's metrics, and resume starts after it (docs/protocol/
    # platform.md, 9.6). Nothing else may be missing, and no epoch may be recorded twice.
    start = resumed_from(resumed.output)
    epochs = epochs_of(alice, model_id)
    assert before | set(range(start, 12)) <= epochs
    assert set(range(12)) - epochs <= set(range(max(before) + 1, start))
    first, second = runs_of(alice, model_id)
    assert first["id"] != second["id"]
    assert first["state"] == "running" and first["liveness"] == "offline"  # it never ended
    assert second["state"] == "completed" and second["trainArgs"]["resume"] != "False"


def resumed_from(output: str) -> int:
    """The 0-based epoch a `yolo train resume` started at, from its "Resuming training" line."""
    [first] = re.findall(r"Resuming training .* from epoch (\d+) to \d+ total epochs", output)
    return int(first) - 1


# ---------------------------------------------------------------------------------- cancel


def test_stop_training_from_the_hub_ends_the_run_cleanly_as_cancelled(
    machine: Machine, shapes: ShapesDataset, alice: httpx.Client, key: str
) -> None:
    running = machine.start(*train_args(shapes, "stoppable", 40), key=key)
    try:
        model = wait_for(
            "the hub to hold epoch 0",
            lambda: next(
                (m for m in models_named(alice, "stoppable") if 0 in epochs_of(alice, m["id"])),
                None,
            ),
            RUN_WAIT_S,
            running.output,
        )
        answer = data_of(alice.post(f"/v1/models/{model['id']}/cancel"))
        assert answer == {"state": "requested"}
        done = running.wait()
    finally:
        running.kill()
    assert done.returncode == 0, done.describe()
    assert "Training cancelled from Platform" in done.output, done.describe()
    assert "Uploading partial results for cancelled training" in done.output, done.describe()
    record = data_of(alice.get(f"/v1/models/{model['id']}"))
    assert record["status"] == "cancelled", record
    assert record["has_best_weights"]
    assert max(epochs_of(alice, model["id"])) < 39
    [run] = runs_of(alice, model["id"])
    assert run["state"] == "cancelled" and run["cancelRequestedAt"]
