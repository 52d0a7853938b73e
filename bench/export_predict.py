"""Export time and prediction latency: a 640x640 image through the ONNX export and the .pt.

A real `trainhub server` (this venv) and one `trainhub worker` (the export venv,
scripts/venvs.sh) share a temporary data directory and its SQLite queue, with the default
worker settings. The model is an untrained yolo11n saved as trained at imgsz 640 (two classes;
an untrained model costs the same to run as a trained one). The benchmark exports it to ONNX and
TorchScript through the HUB API (request to "Export ready!"), then sends `--repeat` predictions
of one 640x640 PNG with `runtime=onnx` and as many with `runtime=torch`, one at a time after
three warm-up requests each, and prints p50/p99/max of the whole request (upload, queue, worker,
answer) and of the worker's own inference step.

Run: .venv/bin/python bench/export_predict.py [--repeat 50]
"""

import argparse
import random
import struct
import time
import zlib

import httpx
from common import Figure, bench_server, heading, ms, percentile, print_table

from tests.exports.support import (
    create_trained_model,
    require_export_venv,
    run_models,
    start_worker,
    wait_for_export,
)

BENCH = "export and predict"
IMAGE_SIZE = 640


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of random pixels (incompressible: the upload is as large as a photo's PNG)."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


class _Hub:
    """What wait_for_export needs to explain a failure: the logs."""

    def __init__(self, server_log, worker_log) -> None:
        self.logs = lambda: f"{server_log()[-4000:]}\n{worker_log()[-4000:]}"


def predictions(
    client: httpx.Client, url: str, image: bytes, runtime: str, repeat: int
) -> tuple[list[float], list[float]]:
    """Send `repeat` predictions (after 3 warm-ups); return request and inference seconds."""
    total, inference = [], []
    for i in range(3 + repeat):
        start = time.perf_counter()
        answer = client.post(url, files={"image": ("image.png", image)}, data={"runtime": runtime})
        took = time.perf_counter() - start
        answer.raise_for_status()
        record = answer.json()["data"]
        assert (record["runtime"], record["imgsz"]) == (runtime, IMAGE_SIZE), record
        if i >= 3:
            total.append(took)
            inference.append(record["speed_ms"]["inference"] / 1000)
    return total, inference


def run(repeat: int = 50) -> list[Figure]:
    """Export, predict, print and return the figures."""
    heading(f"exports and {repeat} predictions per runtime on a {IMAGE_SIZE}x{IMAGE_SIZE} image")
    require_export_venv()
    with bench_server("export") as srv:
        weights = srv.workdir / "yolo11n-640.pt"
        run_models("weights", srv.workdir, path=str(weights), task="detect", imgsz=IMAGE_SIZE)
        worker = start_worker(srv.server.data_dir, {"TRAINHUB_LOG_LEVEL": "WARNING"})
        hub = _Hub(srv.log, worker.log)
        try:
            with httpx.Client(base_url=srv.url, headers=srv.headers, timeout=120) as client:
                deadline = time.monotonic() + 120
                while client.get("/healthz").json()["data"]["queue"]["workers"] < 1:
                    assert time.monotonic() < deadline, worker.log()
                    time.sleep(0.2)
                model_id = create_trained_model(client, weights)
                exports = {}
                for fmt in ("onnx", "torchscript"):
                    start = time.perf_counter()
                    client.post(f"/v1/models/{model_id}/export", json={"format": fmt})
                    body = wait_for_export(hub, client, model_id, fmt)  # type: ignore[arg-type]
                    assert body["message"] == "Export ready!", body
                    record = body["data"]
                    exports[fmt] = (
                        time.perf_counter() - start,
                        record["durationSeconds"],
                        record["size_bytes"],
                    )
                image = png(IMAGE_SIZE, IMAGE_SIZE)
                url = f"/v1/predict/{model_id}"
                onnx = predictions(client, url, image, "onnx", repeat)
                torch = predictions(client, url, image, "torch", repeat)
        finally:
            worker.stop()
    print_table(
        ["export", "request to ready s", "worker s", "file MB"],
        [(fmt, round(a, 2), b, round(c / 1e6, 1)) for fmt, (a, b, c) in exports.items()],
    )
    rows = []
    for name, (total, inference) in (("onnx (onnxruntime)", onnx), ("torch (.pt)", torch)):
        rows.append(
            (
                name,
                len(total),
                round(ms(percentile(total, 50)), 1),
                round(ms(percentile(total, 99)), 1),
                round(ms(max(total)), 1),
                round(ms(percentile(inference, 50)), 1),
            )
        )
    print_table(["runtime", "count", "p50 ms", "p99 ms", "max ms", "inference p50 ms"], rows)
    print(f"image: {len(image)} bytes of PNG")
    return [
        Figure(BENCH, "ONNX export, request to ready", round(exports["onnx"][0], 1), "s"),
        Figure(
            BENCH, "TorchScript export, request to ready", round(exports["torchscript"][0], 1), "s"
        ),
        Figure(BENCH, "predict 640x640, ONNX: p50", round(ms(percentile(onnx[0], 50)), 1), "ms"),
        Figure(BENCH, "predict 640x640, ONNX: p99", round(ms(percentile(onnx[0], 99)), 1), "ms"),
        Figure(BENCH, "predict 640x640, .pt: p50", round(ms(percentile(torch[0], 50)), 1), "ms"),
        Figure(BENCH, "predict 640x640, .pt: p99", round(ms(percentile(torch[0], 99)), 1), "ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="timed predictions per runtime")
    args = parser.parse_args()
    run(args.repeat)


if __name__ == "__main__":
    main()
