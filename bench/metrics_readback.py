"""Metrics read-back: `GET /v1/models/{id}/metrics` of a 300-epoch run, and the model.

The read-back is described in docs/protocol/hub-v1.md §5.9.

Uploads 300 epochs x 20 metrics to one model in batches of 30 epochs (one request each, the
shape ultralytics uses), then times 50 sequential `GET /v1/models/{id}/metrics` (the transpose:
20 series of 300 points) and 50 `GET /v1/models/{id}`, one keep-alive connection, after one
warm-up request each. Prints p50/p99/max latency, response sizes, and whether the series came
back complete.

Run: .venv/bin/python bench/metrics_readback.py [--epochs 300] [--repeat 50]
"""

import argparse
import time

import httpx
from common import (
    METRIC_NAMES,
    Figure,
    bench_server,
    heading,
    metrics_body,
    ms,
    percentile,
    print_table,
)

BENCH = "metrics_readback"
BATCH = 30


def timed_gets(client: httpx.Client, url: str, repeat: int) -> tuple[list[float], httpx.Response]:
    """GET `url` once to warm up, then `repeat` times; return the latencies and last response."""
    resp = client.get(url)
    resp.raise_for_status()
    latencies = []
    for _ in range(repeat):
        start = time.perf_counter()
        resp = client.get(url)
        latencies.append(time.perf_counter() - start)
        resp.raise_for_status()
    return latencies, resp


def run(epochs: int = 300, repeat: int = 50) -> list[Figure]:
    """Upload, read back, print and return the figures."""
    heading(f"metrics read-back: {epochs} epochs x {len(METRIC_NAMES)} metrics, {repeat} reads")
    with bench_server("readback") as srv, httpx.Client(headers=srv.headers, timeout=60) as client:
        model_id = srv.create_model(client)
        upload = []
        for first in range(0, epochs, BATCH):
            body = metrics_body(range(first, min(first + BATCH, epochs)))
            start = time.perf_counter()
            client.post(f"{srv.url}/v1/models/{model_id}", json=body).raise_for_status()
            upload.append(time.perf_counter() - start)
        metrics_lat, metrics_resp = timed_gets(
            client, f"{srv.url}/v1/models/{model_id}/metrics", repeat
        )
        model_lat, model_resp = timed_gets(client, f"{srv.url}/v1/models/{model_id}", repeat)
    series = metrics_resp.json()["data"]
    complete = len(series) == len(METRIC_NAMES) and all(len(s["data"]) == epochs for s in series)
    rows = [
        (
            f"POST metrics, {BATCH} epochs per request",
            len(upload),
            ms(percentile(upload, 50)),
            ms(percentile(upload, 99)),
            ms(max(upload)),
            "-",
        ),
        (
            "GET /v1/models/{id}/metrics",
            len(metrics_lat),
            ms(percentile(metrics_lat, 50)),
            ms(percentile(metrics_lat, 99)),
            ms(max(metrics_lat)),
            len(metrics_resp.content),
        ),
        (
            "GET /v1/models/{id}",
            len(model_lat),
            ms(percentile(model_lat, 50)),
            ms(percentile(model_lat, 99)),
            ms(max(model_lat)),
            len(model_resp.content),
        ),
    ]
    print_table(["request", "count", "p50 ms", "p99 ms", "max ms", "response bytes"], rows)
    print(f"series complete ({len(METRIC_NAMES)} x {epochs} points): {'yes' if complete else 'NO'}")
    return [
        Figure(BENCH, "GET metrics: p50 latency", round(ms(percentile(metrics_lat, 50)), 2), "ms"),
        Figure(BENCH, "GET metrics: p99 latency", round(ms(percentile(metrics_lat, 99)), 2), "ms"),
        Figure(BENCH, "GET metrics: response size", len(metrics_resp.content), "bytes"),
        Figure(BENCH, "GET model: p50 latency", round(ms(percentile(model_lat, 50)), 2), "ms"),
        Figure(BENCH, "GET model: p99 latency", round(ms(percentile(model_lat, 99)), 2), "ms"),
        Figure(BENCH, "series complete", "yes" if complete else "NO"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300, help="epochs uploaded to the model")
    parser.add_argument("--repeat", type=int, default=50, help="timed reads of each endpoint")
    args = parser.parse_args()
    run(args.epochs, args.repeat)


if __name__ == "__main__":
    main()
