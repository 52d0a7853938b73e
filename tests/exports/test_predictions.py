"""Hosted inference by a real worker (docs/protocol/hub-v1.md §5.15).

The worker's ONNX path (onnxruntime, numpy) must answer what ultralytics answers for the same
exported file, and the .pt path what ultralytics answers for the weights; on a square image at
the model's size both paths see the same pixels, so they must agree with each other too.
"""

import struct
import zlib
from pathlib import Path
from random import Random

import pytest

from tests.exports.support import Hub, create_trained_model, run_models, wait_for_export

pytestmark = [pytest.mark.e2e]
BOX_TOLERANCE_PX = 0.05
CONF_TOLERANCE = 1e-3
# the random head scores many boxes alike, and which of two tied boxes NMS keeps is up to the
# implementation; above this overlap only near-copies are suppressed (NMS itself: test_boxes.py)
IOU = "0.9"


def noise_png(width: int, height: int, seed: int) -> bytes:
    rng = Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def predict(client, model_id: str, image: bytes, **fields: str) -> dict:
    answer = client.post(
        f"/v1/predict/{model_id}", files={"image": ("image.png", image)}, data=fields
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["data"])


def boxes(results: list[dict]) -> list[tuple]:
    return sorted(
        (r["class"], r["confidence"], *(r["box"][k] for k in ("x1", "y1", "x2", "y2")))
        for r in results
    )


def assert_same(got: list[dict], expected: list[dict]) -> None:
    mine, theirs = boxes(got), boxes(expected)
    assert len(mine) == len(theirs) > 0, (len(mine), len(theirs))
    for a, b in zip(mine, theirs, strict=True):
        assert a[0] == b[0]
        assert abs(a[1] - b[1]) <= CONF_TOLERANCE, (a, b)
        assert all(abs(x - y) <= BOX_TOLERANCE_PX for x, y in zip(a[2:], b[2:], strict=True)), (
            a,
            b,
        )


@pytest.fixture(scope="module")
def exported(hub: Hub, detect_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    """A model with its ONNX export done, and the export file downloaded."""
    with hub.client() as alice:
        model_id = create_trained_model(alice, detect_weights)
        alice.post(f"/v1/models/{model_id}/export", json={"format": "onnx"})
        record = wait_for_export(hub, alice, model_id, "onnx")["data"]
    assert record["status"] == "done", hub.logs()
    folder = tmp_path_factory.mktemp("onnx")
    import httpx

    path = folder / record["fileName"]
    path.write_bytes(httpx.get(record["url"], timeout=60).content)
    return model_id, path


def test_onnx_predictions_answer_what_ultralytics_answers(hub: Hub, exported, tmp_path) -> None:
    model_id, onnx_file = exported
    image = noise_png(96, 64, seed=1)  # not square: letterboxed with padding
    (tmp_path / "image.png").write_bytes(image)
    with hub.client() as alice:
        record = predict(alice, model_id, image, confidence="0.25", iou=IOU)
    assert (record["runtime"], record["task"], record["imgsz"]) == ("onnx", "detect", 64)
    assert (record["width"], record["height"]) == (96, 64)
    for result in record["results"]:
        box = result["box"]
        assert 0 <= box["x1"] <= box["x2"] <= 96 and 0 <= box["y1"] <= box["y2"] <= 64
        assert result["name"] == {0: "square", 1: "disc"}[result["class"]]
    expected = run_models(
        "reference",
        tmp_path,
        model=str(onnx_file),
        image=str(tmp_path / "image.png"),
        conf=0.25,
        iou=float(IOU),
        imgsz=64,
        task="detect",
    )
    assert_same(record["results"], expected["results"])


def test_the_onnx_and_pt_paths_agree_and_the_pt_answers_as_ultralytics(
    hub: Hub, exported, detect_weights: Path, tmp_path
) -> None:
    model_id, _ = exported
    image = noise_png(64, 64, seed=2)  # the model's size: both paths see the same pixels
    (tmp_path / "image.png").write_bytes(image)
    with hub.client() as alice:
        onnx = predict(alice, model_id, image, conf="0.3", iou=IOU)
        torch = predict(alice, model_id, image, conf="0.3", iou=IOU, runtime="torch")
        bigger = predict(alice, model_id, image, conf="0.3", size="96")  # not the export's size
    assert (onnx["runtime"], torch["runtime"], bigger["runtime"]) == ("onnx", "torch", "torch")
    assert bigger["imgsz"] == 96
    assert_same(onnx["results"], torch["results"])
    expected = run_models(
        "reference",
        tmp_path,
        model=str(detect_weights),
        image=str(tmp_path / "image.png"),
        conf=0.3,
        iou=float(IOU),
        imgsz=64,
    )
    assert_same(torch["results"], expected["results"])
    assert set(torch["speed_ms"]) == {"preprocess", "inference", "postprocess"}


def test_the_worker_refuses_what_it_cannot_decode_and_lives_on(hub: Hub, exported) -> None:
    model_id, _ = exported
    broken = noise_png(32, 32, seed=3)
    broken = broken[:60] + b"\x00" * 40 + broken[100:]  # a sound header, a corrupt stream
    with hub.client() as alice:
        answer = alice.post(f"/v1/predict/{model_id}", files={"image": ("b.png", broken)})
        assert answer.status_code == 422, answer.text
        assert "could not be decoded" in answer.json()["message"]
        assert predict(alice, model_id, noise_png(32, 32, seed=4))["runtime"] == "onnx"
    assert hub.workers[0].proc.poll() is None
    assert "prediction for model" in hub.workers[0].log()


@pytest.mark.parametrize("task", ["pose", "classify"])
def test_pose_and_classify_onnx_answer_what_ultralytics_answers(
    hub: Hub, task: str, tmp_path: Path
) -> None:
    weights = tmp_path / f"{task}.pt"
    run_models("weights", tmp_path, path=str(weights), task=task, imgsz=64, random_head=True)
    image = noise_png(80, 64, seed=5)
    (tmp_path / "image.png").write_bytes(image)
    with hub.client() as alice:
        model_id = create_trained_model(alice, weights)
        alice.post(f"/v1/models/{model_id}/export", json={"format": "onnx"})
        record = wait_for_export(hub, alice, model_id, "onnx")["data"]
        assert record["status"] == "done", hub.logs()
        onnx_file = tmp_path / "model.onnx"
        import httpx

        onnx_file.write_bytes(httpx.get(record["url"], timeout=60).content)
        answer = predict(alice, model_id, image, conf="0.1", iou=IOU)
    assert (answer["runtime"], answer["task"]) == ("onnx", task)
    expected = run_models(
        "reference",
        tmp_path,
        model=str(onnx_file),
        image=str(tmp_path / "image.png"),
        conf=0.1,
        iou=float(IOU),
        imgsz=64,
        task=task,
    )
    if task == "classify":
        # compared within a tolerance, not rounded: 0.5005 rounds either way (a CI failure)
        mine = {r["class"]: r["confidence"] for r in answer["results"]}
        theirs = {r["class"]: r["confidence"] for r in expected["results"]}
        assert mine.keys() == theirs.keys() and mine, (mine, theirs)
        assert all(abs(mine[c] - theirs[c]) <= CONF_TOLERANCE for c in mine), (mine, theirs)
        ranked = [r["class"] for r in answer["results"]]
        assert ranked == sorted(ranked, key=lambda c: -mine[c]), answer["results"]
        return
    assert_same(answer["results"], expected["results"])
    for got, want in zip(
        sorted(answer["results"], key=lambda r: (r["box"]["x1"], r["box"]["y1"])),
        sorted(expected["results"], key=lambda r: (r["box"]["x1"], r["box"]["y1"])),
        strict=True,
    ):
        for axis in ("x", "y"):
            pairs = zip(got["keypoints"][axis], want["keypoints"][axis], strict=True)
            assert all(abs(a - b) <= BOX_TOLERANCE_PX for a, b in pairs), (axis, got, want)
