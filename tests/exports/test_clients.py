"""The stock clients export and predict through trainhub (docs/protocol/hub-v1.md §5.12-§5.15).

hub-sdk 0.0.25 runs in the test venv (tests/compat/conftest.py), ultralytics 8.3.253 in the compat
venv (tests/compat/ultralytics_support.py); the hub has one worker of the export venv.
"""

from pathlib import Path

import httpx
import pytest

from tests.compat.conftest import run_scenario
from tests.compat.ultralytics_support import Workspace
from tests.exports.support import EXPORT_TIMEOUT_S, Hub, create_trained_model
from tests.exports.test_predictions import noise_png

pytestmark = [pytest.mark.compat, pytest.mark.e2e]


def test_hub_sdk_exports_polls_get_export_as_its_suite_does_and_predicts(
    hub: Hub, detect_weights: Path, tmp_path: Path
) -> None:
    with hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
    image = tmp_path / "image.png"
    image.write_bytes(noise_png(64, 64, seed=7))
    run = run_scenario(
        hub.server,
        "export_predict",
        tmp_path / "cwd",
        key=hub.server.keys["alice"],
        model_id=model_id,
        image=str(image),
        timeout=EXPORT_TIMEOUT_S,
    )
    r = run.result
    assert r["export"] == 200, run.why(hub.logs())
    assert r["ready"]["last"]["message"] == "Export ready!", run.why(hub.logs())
    assert r["ready"]["last"]["data"]["url"].startswith(hub.url)
    assert r["predict"] == 200, run.why(hub.logs())
    prediction = r["prediction"]["data"]
    assert (prediction["runtime"], prediction["imgsz"], prediction["conf"]) == ("onnx", 64, 0.25)
    assert prediction["iou"] == 0.45
    assert prediction["results"] and all("box" in x for x in prediction["results"])
    # the hub-sdk suite's fixture then clears the exports
    with hub.client() as alice:
        cleared = alice.post(f"/qa/model/{model_id}/clear_exports")
        assert cleared.status_code == 200, cleared.text
        assert (
            alice.post("/get-export", json={"modelId": model_id, "format": "onnx"}).status_code
            == 404
        )


@pytest.mark.timeout(EXPORT_TIMEOUT_S + 120, func_only=True)
def test_ultralytics_hub_export_model_and_get_export(
    hub: Hub, detect_weights: Path, tmp_path: Path
) -> None:
    with hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
    workspace = Workspace.create(tmp_path)
    run = workspace.run(
        hub.url,
        "export",
        "--model-id",
        model_id,
        "--format",
        "torchscript",
        "--login",
        hub.server.keys["alice"],
        "--timeout",
        str(EXPORT_TIMEOUT_S),
        timeout=EXPORT_TIMEOUT_S + 60,
    )
    assert run.returncode == 0 and run.result is not None, run.describe() + hub.logs()
    answer = run.result["answer"]
    assert run.result["logged_in"] is True
    assert (answer["success"], answer["message"]) == (True, "Export ready!"), run.describe()
    record = answer["data"]
    assert record["format"] == "torchscript" and record["fileName"].endswith("-best.torchscript")
    assert httpx.get(record["url"], timeout=60).status_code == 200
