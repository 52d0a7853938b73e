"""Metrics ingest: `POST /v1/models/{id}` with one epoch of 20 metrics per request.

The request is described in docs/protocol/hub-v1.md §5.8.

Each client owns a model and sends epoch 0, 1, 2, ... exactly as ultralytics does
(`{"type": "metrics", "metrics": {"<epoch>": json.dumps({...20 names...})}}`, header
x-api-key). Two runs against one fresh server: 1 client sending sequentially, then 64 clients at
once (one thread and one httpx.Client, i.e. one keep-alive connection, each). Each run stops
after `--seconds` or `--max-requests` per client, whichever comes first. Prints requests/s,
p50/p99 latency, errors, the CPU the server and this client used, and whether every accepted
epoch was stored.

Run: .venv/bin/python bench/metrics_ingest.py [--seconds 20] [--clients 64]
"""

import argparse
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
import psutil
from common import (
    BenchServer,
    CpuMeter,
    Figure,
    bench_server,
    heading,
    log_lines,
    metrics_body,
    ms,
    percentile,
    print_table,
)

BENCH = "metrics_ingest"


@dataclass
class ClientResult:
    """What one client saw."""

    latencies: list[float] = field(default_factory=list)
    attempts: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)


@dataclass
class RunResult:
    """One run: all clients together."""

    label: str
    clients: int
    wall_s: float
    results: list[ClientResult]
    server_cpu_s: float
    client_cpu_s: float
    stored_ok: bool | None = None

    @property
    def latencies(self) -> list[float]:
        return [x for r in self.results for x in r.latencies]

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def errors(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for r in self.results:
            total.update(r.errors)
        return total


def _client(
    srv: BenchServer,
    model_id: str,
    start: threading.Barrier,
    deadline_box: list[float],
    max_requests: int,
    out: ClientResult,
) -> None:
    url = f"{srv.url}/v1/models/{model_id}"
    with httpx.Client(headers=srv.headers, timeout=30) as client:
        client.get(f"{srv.url}/healthz")  # open the connection before the clock starts
        start.wait(timeout=60)
        for epoch in range(max_requests):
            if time.perf_counter() >= deadline_box[0]:
                break
            body = metrics_body([epoch])
            out.attempts += 1
            t0 = time.perf_counter()
            try:
                resp = client.post(url, json=body)
            except httpx.HTTPError as exc:
                out.errors[type(exc).__name__] += 1
                continue
            out.latencies.append(time.perf_counter() - t0)
            if resp.is_success:
                out.ok += 1
            else:
                out.errors[f"HTTP {resp.status_code}"] += 1


def run_clients(
    srv: BenchServer, label: str, n_clients: int, seconds: float, max_requests: int
) -> RunResult:
    """Run `n_clients` concurrent clients, each on its own new model, and collect results."""
    with httpx.Client(timeout=30) as setup:
        model_ids = [srv.create_model(setup) for _ in range(n_clients)]
    results = [ClientResult() for _ in range(n_clients)]
    start = threading.Barrier(n_clients + 1)
    deadline_box = [float("inf")]
    threads = [
        threading.Thread(
            target=_client,
            args=(srv, model_ids[i], start, deadline_box, max_requests, results[i]),
            daemon=True,
        )
        for i in range(n_clients)
    ]
    for thread in threads:
        thread.start()
    me = psutil.Process()
    with CpuMeter(srv.pid) as server_cpu:
        client_cpu0 = sum(me.cpu_times()[:2])
        deadline_box[0] = time.perf_counter() + seconds
        start.wait(timeout=60)
        t0 = time.perf_counter()
        for thread in threads:
            thread.join(timeout=seconds + 60)
        wall = time.perf_counter() - t0
        client_cpu = sum(me.cpu_times()[:2]) - client_cpu0
    run = RunResult(label, n_clients, wall, results, server_cpu.seconds, client_cpu)
    run.stored_ok = _check_stored(srv, model_ids, results)
    return run


def _check_stored(srv: BenchServer, model_ids: list[str], results: list[ClientResult]) -> bool:
    """True when each model holds exactly as many epochs as its client had accepted."""
    with httpx.Client(headers=srv.headers, timeout=60) as client:
        for model_id, result in zip(model_ids, results, strict=True):
            resp = client.get(f"{srv.url}/v1/models/{model_id}/metrics")
            if not resp.is_success:
                return False
            series = resp.json()["data"]
            epochs = {e for s in series for e in s["data"]}
            if len(epochs) != result.ok or len(series) != 20:
                return False
    return True


def report(runs: list[RunResult], log: str) -> list[Figure]:
    """Print a table of the runs and return summary figures."""
    rows = []
    figures = []
    for run in runs:
        lat = run.latencies
        total = sum(r.attempts for r in run.results)
        rps = run.ok / run.wall_s if run.wall_s else 0.0
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(run.errors.items())) or "0"
        rows.append(
            (
                run.label,
                run.clients,
                total,
                rps,
                ms(percentile(lat, 50)),
                ms(percentile(lat, 99)),
                ms(max(lat, default=float("nan"))),
                errors,
                100 * run.server_cpu_s / run.wall_s,
                ms(run.server_cpu_s / run.ok) if run.ok else float("nan"),
                100 * run.client_cpu_s / run.wall_s,
                "yes" if run.stored_ok else "NO",
            )
        )
        figures += [
            Figure(BENCH, f"{run.label}: throughput", round(rps, 1), "req/s"),
            Figure(BENCH, f"{run.label}: p50 latency", round(ms(percentile(lat, 50)), 2), "ms"),
            Figure(BENCH, f"{run.label}: p99 latency", round(ms(percentile(lat, 99)), 2), "ms"),
            Figure(BENCH, f"{run.label}: errors", sum(run.errors.values()), "requests"),
            Figure(
                BENCH,
                f"{run.label}: server CPU per request",
                round(ms(run.server_cpu_s / max(run.ok, 1)), 2),
                "ms",
            ),
        ]
    print_table(
        [
            "run",
            "clients",
            "requests",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "errors",
            "server CPU %",
            "server CPU ms/req",
            "bench CPU %",
            "all stored",
        ],
        rows,
    )
    print("(CPU % is of one core; the machine's cores are shared by server and benchmark)")
    suspicious = log_lines(log, "locked", "traceback", "error", "exception")
    if suspicious:
        print(f"\nserver log has {len(suspicious)} suspicious lines, first ones:")
        for line in suspicious[:10]:
            print("  " + line[:200])
    return figures


def run(seconds: float = 20, clients: int = 64, max_requests: int = 5000) -> list[Figure]:
    """Run both phases against a fresh server; print and return the figures."""
    heading(f"metrics ingest: 1 client, then {clients} clients ({seconds:.0f} s each at most)")
    with bench_server("ingest") as srv:
        runs = [
            run_clients(srv, "sequential", 1, seconds, max_requests),
            run_clients(srv, f"{clients} concurrent", clients, seconds, max_requests),
        ]
        return report(runs, srv.log())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each run")
    parser.add_argument("--clients", type=int, default=64, help="clients in the concurrent run")
    parser.add_argument(
        "--max-requests", type=int, default=5000, help="cap on requests per client in each run"
    )
    args = parser.parse_args()
    run(args.seconds, args.clients, args.max_requests)


if __name__ == "__main__":
    main()
