"""Real exports by a real worker through the HUB API (docs/protocol/hub-v1.md §5.12, §5.13).

A tiny untrained yolo11n (imgsz 64) is exported by ultralytics' own exporter in a worker of the
export venv; the files are downloaded through their signed links and loaded by their runtimes.
"""

import hashlib
import secrets
from pathlib import Path

import httpx
import pytest

from tests.exports.support import (
    Hub,
    create_trained_model,
    run_models,
    running_hub,
    wait_for_export,
)
from tests.exports.test_predictions import noise_png

pytestmark = [pytest.mark.e2e]


def test_onnx_and_torchscript_exports_are_made_stored_and_served(
    hub: Hub, detect_weights: Path, tmp_path: Path
) -> None:
    with hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        for fmt in ("onnx", "torchscript"):
            answer = alice.post(f"/v1/models/{model_id}/export", json={"format": fmt})
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["status"] in ("queued", "running")
        files = {}
        for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".torchscript")):
            body = wait_for_export(hub, alice, model_id, fmt)
            assert (body["success"], body["message"]) == (True, "Export ready!"), hub.logs()
            record = body["data"]
            assert record["attempts"] == 1 and record["error"] is None
            assert record["fileName"] == f"{model_id}-{record['sha256'][:8]}-best{suffix}"
            content = httpx.get(record["url"], timeout=60).content  # no key: the link is signed
            assert hashlib.sha256(content).hexdigest() == record["sha256"]
            assert len(content) == record["size_bytes"] > 1_000_000
            files[fmt] = tmp_path / record["fileName"]
            files[fmt].write_bytes(content)
        history = alice.get(f"/v1/models/{model_id}/exports").json()["data"]
        assert {(r["format"], r["status"]) for r in history} == {
            ("onnx", "done"),
            ("torchscript", "done"),
        }
        assert all(r["durationSeconds"] > 0 for r in history)
    loaded = run_models(
        "check", tmp_path, onnx=str(files["onnx"]), torchscript=str(files["torchscript"])
    )
    assert loaded["onnx"]["input"] == [1, 3, 64, 64]
    assert loaded["onnx"]["metadata"]["names"] == "{0: 'square', 1: 'disc'}"
    assert loaded["torchscript"]["output"][0] == 1
    assert "export" in hub.workers[0].log() and " done in " in hub.workers[0].log()


def test_a_format_whose_package_is_missing_fails_naming_it(hub: Hub, detect_weights: Path) -> None:
    with hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        answer = alice.post(f"/v1/models/{model_id}/export", json={"format": "openvino"})
        assert answer.status_code == 200, answer.text
        body = wait_for_export(hub, alice, model_id, "openvino")
    assert body["success"] is False and body["data"]["status"] == "failed"
    message = body["message"]
    assert message.startswith("OpenVINO export failed: exporting to OpenVINO needs")
    assert "'openvino'" in message and "pip install openvino" in message
    assert body["data"]["attempts"] == 1  # not retried: it would fail the same way
    assert hub.workers[0].proc.poll() is None


def test_an_exporter_error_says_what_it_was_with_its_last_lines(
    hub: Hub, detect_weights: Path
) -> None:
    with hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        # TensorRT needs a GPU: ultralytics' exporter refuses on CPU with its own message
        alice.post(f"/v1/models/{model_id}/export", json={"format": "engine"})
        body = wait_for_export(hub, alice, model_id, "engine")
    assert body["data"]["status"] == "failed", hub.logs()
    error = body["data"]["error"]
    assert error.startswith(("the exporter failed: ", "exporting to TensorRT needs")), error
    if error.startswith("the exporter failed: "):
        assert "last lines of its output:" in error
    assert "\x1b[" not in error  # colour codes are stripped


def test_the_redis_queue_runs_the_same_jobs(detect_weights: Path, tmp_path: Path) -> None:
    """The team backend: the server and its worker share a queue on Redis (redis_url)."""
    env = {
        "TRAINHUB_REDIS_URL": "redis://127.0.0.1:6379",
        "TRAINHUB_QUEUE_NAME": f"test-{secrets.token_hex(6)}",
    }
    with running_hub(tmp_path, env=env) as hub, hub.client() as alice:
        assert "redis://127.0.0.1:6379" in hub.workers[0].log()
        model_id = create_trained_model(alice, detect_weights)
        alice.post(f"/v1/models/{model_id}/export", json={"format": "onnx"})
        body = wait_for_export(hub, alice, model_id, "onnx")
        assert body["message"] == "Export ready!", hub.logs()
        image = noise_png(48, 48, seed=9)
        answer = alice.post(f"/v1/predict/{model_id}", files={"image": ("i.png", image)})
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["runtime"] == "onnx"
        health = alice.get("/healthz").json()["data"]["queue"]
        assert health == {"status": "ok", "depth": 0, "workers": 1}
