"""The hot paths of a hub, each beside the ceiling this machine allows, in one run.

- metrics ingest (`POST /v1/models/{id}`, one epoch of 20 metrics per request): one trainer
  (1 connection) and 64 trainers (64 connections), with wrk; ceiling: a FastAPI route that
  inserts one row into SQLite (bench/ceilings.py /insert), at the same concurrency;
- heartbeats (`POST /v1/agent/heartbeat/models/{id}`, agentId never echoed), 64 connections;
  ceiling: a FastAPI route that answers a constant (/hello);
- the same two at 64 connections with `trainhub server --workers 2`;
- a 1 GiB final weights upload (bench/upload_1gib.py's client); ceilings: a raw streaming
  multipart sink into a file with fsync (/sink), and sha256 of the same file.

For each: throughput, latency (p50/p99), errors, server CPU per request (the figure that moves
least with the machine's load), and the ratio to its ceiling. Afterwards every accepted epoch is
checked to be stored exactly once. Needs wrk (Debian: `apt-get install wrk`; `make bench` does).

Run: .venv/bin/python bench/hotpaths.py [--seconds 15] [--quick]
"""

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import upload_1gib
from common import BenchServer, Figure, bench_server, heading, load_note, print_table

BENCH = "hotpaths"

HERE = Path(__file__).parent

WRK = shutil.which("wrk")


@dataclass
class Run:
    """One wrk run: what it measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_ms: float  # server CPU per request, every process of the server counted


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pid: int) -> float:
    """Return the CPU seconds used by a process and all its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def wrk(url: str, script: str, connections: int, seconds: int, pid: int, *args: str) -> Run:
    """Run wrk against `url` with a Lua script from bench/wrk; measure the server's CPU."""
    if WRK is None:
        raise SystemExit("wrk is missing: run scripts/install-bench-tools.sh (make bench does)")
    threads = min(2, connections)
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    command += ["-s", str(HERE / "wrk" / script), url, "--", *args]
    before = cpu_seconds(pid)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    return Run(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(latency["50"]),
        p99_ms=_ms(latency["99"]),
        requests=requests,
        errors=errors,
        cpu_ms=1000 * cpu / max(requests, 1),
    )


class Ceiling:
    """bench/ceilings.py in a uvicorn process of its own."""

    def __init__(self, workdir: Path) -> None:
        from tests.servers import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "ceilings.py"), str(self.port), str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"{self.url}/hello", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("the ceiling app did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def stored_epochs(hub: BenchServer, model_id: str) -> int:
    """Return how many epochs the hub stored for a model (the read-back has each epoch once)."""
    data = httpx.get(f"{hub.url}/v1/models/{model_id}/metrics", headers=hub.headers, timeout=60)
    series = data.json()["data"]
    return max((len(s["data"]) for s in series), default=0)


def trainer_paths(hub: BenchServer, seconds: int, prefix: str) -> dict[str, Run]:
    """Measure ingest (1 and 64 connections) and heartbeats (64) on one running hub."""
    with httpx.Client(timeout=30) as client:
        one, many, beating = (hub.create_model(client) for _ in range(3))
    runs = {}
    for name, model, script, connections in (
        (f"{prefix}ingest, 1 connection", one, "epoch.lua", 1),
        (f"{prefix}ingest, 64 connections", many, "epoch.lua", 64),
        (f"{prefix}heartbeats, 64 connections", beating, "beat.lua", 64),
    ):
        if prefix and connections == 1:
            continue
        run = wrk(hub.url, script, connections, seconds, hub.pid, model, hub.key)
        if script == "epoch.lua":
            accepted = run.requests - run.errors
            stored = stored_epochs(hub, model)
            # wrk may count a request cut off at the end as sent but unanswered
            assert abs(stored - accepted) <= connections, (name, stored, accepted)
        runs[name] = run
    return runs


def ceiling_runs(ceiling: Ceiling, seconds: int) -> dict[str, Run]:
    """Measure the ceiling app at the same concurrencies."""
    pid = ceiling.proc.pid
    return {
        "insert, 1 connection": wrk(ceiling.url, "post.lua", 1, seconds, pid, "/insert"),
        "insert, 64 connections": wrk(ceiling.url, "post.lua", 64, seconds, pid, "/insert"),
        "hello, 64 connections": wrk(ceiling.url, "post.lua", 64, seconds, pid, "/hello"),
    }


def upload_figures(size_mib: int, ceiling: Ceiling, workdir: Path) -> dict[str, float]:
    """Upload a file of `size_mib` to trainhub and to the sink; hash it; return the figures."""
    figures = {(f.name, f.unit): f.value for f in upload_1gib.upload(size_mib)}
    source = workdir / "best.pt"
    upload_1gib.make_file(source, size_mib * upload_1gib.MIB)
    body = upload_1gib.MultipartBody(source, {"epoch": "0", "type": "final"}, "best.pt")
    started = time.perf_counter()
    answer = httpx.post(
        f"{ceiling.url}/sink",
        content=iter(body),
        headers={"Content-Type": body.content_type, "Content-Length": str(body.length)},
        timeout=600,
    )
    answer.raise_for_status()
    sink = size_mib / (time.perf_counter() - started)
    digest, started = hashlib.sha256(), time.perf_counter()
    with source.open("rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    sha = size_mib / (time.perf_counter() - started)
    source.unlink()
    return {
        "mib_s": float(figures[("throughput", "MiB/s")]),
        "cpu_s_per_gib": float(figures[("server CPU time per GiB", "s")]),
        "server_rss_growth_mib": float(figures[("server RSS growth", "MiB")]),
        "client_rss_growth_mib": float(figures[("client RSS growth", "MiB")]),
        "probe_p99_ms": float(figures[("GET model during upload: p99", "ms")]),
        "sink_mib_s": sink,
        "sha256_mib_s": sha,
    }


def run(seconds: int, size: int) -> list[Figure]:
    """Measure every hot path and its ceiling; print the tables; return the headline figures."""
    if WRK is None:
        sys.exit("wrk is missing: apt-get install wrk (make bench installs it)")
    heading("hot paths and their ceilings")
    print(load_note())
    workdir = Path(tempfile.mkdtemp(prefix="trainhub-bench-ceiling-"))
    ceiling = Ceiling(workdir)
    try:
        ceilings = ceiling_runs(ceiling, seconds)
        with bench_server("hot") as hub:
            runs = trainer_paths(hub, seconds, "")
        with bench_server("hot2", {"TRAINHUB_WORKERS": "2"}) as hub:
            runs |= trainer_paths(hub, seconds, "--workers 2: ")
        upload = upload_figures(size, ceiling, workdir)
    finally:
        ceiling.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    against = {
        "ingest, 1 connection": "insert, 1 connection",
        "ingest, 64 connections": "insert, 64 connections",
        "heartbeats, 64 connections": "hello, 64 connections",
        "--workers 2: ingest, 64 connections": "insert, 64 connections",
        "--workers 2: heartbeats, 64 connections": "hello, 64 connections",
    }
    rows = []
    for name, run in runs.items():
        top = ceilings[against[name]]
        rows.append(
            [
                name,
                f"{run.rps:,.0f}",
                f"{run.p50_ms:.2f} / {run.p99_ms:.2f}",
                run.errors,
                f"{run.cpu_ms:.3f}",
                f"{top.rps:,.0f} ({against[name]})",
                f"{run.rps / top.rps:.0%}",
            ]
        )
    for name, run in ceilings.items():
        rows.append(
            [
                f"ceiling: {name}",
                f"{run.rps:,.0f}",
                f"{run.p50_ms:.2f} / {run.p99_ms:.2f}",
                run.errors,
                f"{run.cpu_ms:.3f}",
                "",
                "",
            ]
        )
    headers = ["path", "req/s", "p50 / p99 ms", "errors", "server CPU ms/req", "ceiling", "ratio"]
    print_table(headers, rows)
    print()
    mib_s = upload["mib_s"]
    print_table(
        ["upload of " + str(size) + " MiB", "value", "ceiling", "ratio"],
        [
            [
                "end to end, MiB/s",
                f"{mib_s:.0f}",
                f"{upload['sink_mib_s']:.0f} (sink)",
                f"{mib_s / upload['sink_mib_s']:.0%}",
            ],
            ["sha256 of the file, MiB/s", f"{upload['sha256_mib_s']:.0f}", "", ""],
            ["server CPU s per GiB", f"{upload['cpu_s_per_gib']:.2f}", "", ""],
            ["server RSS growth MiB", f"{upload['server_rss_growth_mib']:.1f}", "32 (goal)", ""],
            ["client RSS growth MiB", f"{upload['client_rss_growth_mib']:.1f}", "32 (goal)", ""],
            ["GET p99 during the upload, ms", f"{upload['probe_p99_ms']:.1f}", "20 (goal)", ""],
        ],
    )
    print(json.dumps({"runs": {k: vars(v) for k, v in runs.items()}, "upload": upload}))
    figures = [
        Figure(BENCH, f"{name}: {what}", value, unit)
        for name, run in runs.items()
        for what, value, unit in (
            ("throughput", round(run.rps), "req/s"),
            ("p99", round(run.p99_ms, 2), "ms"),
            ("server CPU", round(run.cpu_ms, 3), "ms/req"),
            ("errors", run.errors, ""),
        )
    ]
    return [*figures, Figure(BENCH, f"{size} MiB upload", round(mib_s), "MiB/s")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15, help="length of each wrk run")
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the upload")
    parser.add_argument("--quick", action="store_true", help="5 s runs and a 128 MiB upload")
    args = parser.parse_args()
    seconds, size = (5, 128) if args.quick else (args.seconds, args.size_mib)
    run(seconds, size)


if __name__ == "__main__":
    main()
