"""Shared helpers for the benchmarks: a throw-away server, percentiles, RSS sampling, tables.

Not a benchmark itself. Each script in bench/ imports it (bench/ is on sys.path when a script is
run as `.venv/bin/python bench/<name>.py`). The server is a real `trainhub server` process
started with tests/servers.py, in a temporary data directory, with rate limits raised so high
that the numbers measure the server and not its limiter.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.servers import RunningServer, create_user, free_port, spawn_server  # noqa: E402

MIB = 1024 * 1024
BENCH_ENV = {
    "TRAINHUB_RATE_LIMIT": "100000/second",
    "TRAINHUB_ANONYMOUS_RATE_LIMIT": "100000/second",
    "TRAINHUB_LOG_LEVEL": "WARNING",
}

# What ultralytics sends for a segmentation run (docs/protocol/hub-v1.md §5.8): 16 losses and
# metrics, plus the four model/* keys of epoch 0 with profile=True, so every epoch has 20 keys.
METRIC_NAMES = (
    "train/box_loss",
    "train/seg_loss",
    "train/cls_loss",
    "train/dfl_loss",
    "metrics/precision(B)",
    "metrics/recall(B)",
    "metrics/mAP50(B)",
    "metrics/mAP50-95(B)",
    "metrics/precision(M)",
    "metrics/recall(M)",
    "metrics/mAP50(M)",
    "metrics/mAP50-95(M)",
    "val/box_loss",
    "val/seg_loss",
    "val/cls_loss",
    "val/dfl_loss",
    "model/parameters",
    "model/GFLOPs",
    "model/speed_PyTorch(ms)",
    "model/speed_ONNX(ms)",
)

# The body ultralytics sends to create a model in a local run (docs/protocol/hub-v1.md §5.4).
CREATE_MODEL_BODY = {
    "config": {
        "batchSize": 16,
        "epochs": 300,
        "imageSize": 640,
        "patience": 100,
        "device": "cpu",
        "cache": "False",
    },
    "dataset": {"name": "coco8-seg.yaml"},
    "lineage": {"architecture": {"name": "yolo11n-seg"}, "parent": {}},
    "meta": {"name": "yolo11n-seg.yaml"},
}


def epoch_metrics(epoch: int) -> str:
    """Return one epoch's metrics exactly as ultralytics encodes them: a json.dumps string."""
    values: dict[str, float | int] = {}
    for i, name in enumerate(METRIC_NAMES):
        if name == "model/parameters":
            values[name] = 2_876_542
        else:
            values[name] = round(1.0 / (1 + epoch + i) + 0.001 * ((epoch * 7 + i) % 13), 5)
    return json.dumps(values)


def metrics_body(epochs: Sequence[int]) -> dict[str, Any]:
    """Return a `POST /v1/models/{id}` body carrying `epochs`."""
    return {"type": "metrics", "metrics": {str(e): epoch_metrics(e) for e in epochs}}


@dataclass
class BenchServer:
    """A running server, the API key of its benchmark user, and its process id."""

    server: RunningServer
    key: str
    workdir: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        return self.server.proc.pid

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}

    def log(self) -> str:
        """Return what the server printed so far."""
        return self.server.log()

    def create_model(self, client: httpx.Client) -> str:
        """Create a model as ultralytics does and return its id."""
        resp = client.post(f"{self.url}/v1/models", json=CREATE_MODEL_BODY, headers=self.headers)
        resp.raise_for_status()
        return str(resp.json()["data"]["id"])


@contextmanager
def bench_server(name: str, env: dict[str, str] | None = None) -> Iterator[BenchServer]:
    """Start a server in a temp dir with one user, yield it, then stop it and delete the dir.

    `env` adds TRAINHUB_* settings to BENCH_ENV. `TRAINHUB_BENCH_TMP` chooses where the temp
    dir goes (default: the system temp dir).
    """
    workdir = Path(tempfile.mkdtemp(prefix=f"trainhub-bench-{name}-", dir=_tmp_root()))
    try:
        data_dir = workdir / "hub-data"
        data_dir.mkdir()
        settings = {**BENCH_ENV, **(env or {})}
        key = create_user(data_dir, "bench", env=settings)
        server = spawn_server(data_dir, free_port(), settings)
        try:
            yield BenchServer(server=server, key=key, workdir=workdir)
        finally:
            server.kill(signal.SIGTERM)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _tmp_root() -> str | None:
    return os.environ.get("TRAINHUB_BENCH_TMP") or None


def percentile(values: Sequence[float], pct: float) -> float:
    """Return the `pct` percentile of `values` (linear interpolation); NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class RssSampler:
    """Sample a process's resident set size every `interval_s` in a background thread.

    `baseline` is the RSS when sampling started, `peak` the largest seen, both in bytes.
    Use as a context manager; sampling stops (and the thread ends) when the block ends.
    """

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self.last = self.baseline
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.last = rss
            self.peak = max(self.peak, rss)
            self.samples += 1
            self._stop.wait(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


class LatencyProbe:
    """GET `url` every `interval_s` from a process of its own and keep each latency (seconds).

    Shows how other requests fare while the benchmark loads the server. Other requests come from
    other clients, so the probe is a process apart: a thread beside the benchmark's own client
    would share its GIL and measure the client as well. At most `max_requests`.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        interval_s: float = 0.1,
        max_requests: int = 10_000,
    ) -> None:
        self.args = [url, str(interval_s), str(max_requests)]
        self.headers = headers or {}
        self.latencies: list[float] = []
        self.errors = 0
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> "LatencyProbe":
        self._child = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("probe.py")), *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PROBE_HEADERS": json.dumps(self.headers)},
        )
        assert self._child.stdout is not None
        if self._child.stdout.readline().strip() != "ready":
            self._end()
            raise RuntimeError(f"the latency probe could not GET {self.args[0]}")
        return self

    def __exit__(self, *exc: object) -> None:
        out = self._end()
        lines = out.strip().splitlines()
        if not lines:
            raise RuntimeError("the latency probe ended without its figures")
        result = json.loads(lines[-1])
        self.latencies, self.errors = result["latencies"], result["errors"]

    def _end(self) -> str:
        """Tell the probe to stop, wait for it (killed after 70 s) and return what it printed."""
        assert self._child is not None
        try:
            out, _ = self._child.communicate(input="stop\n", timeout=70)
        except subprocess.TimeoutExpired:
            self._child.kill()
            out, _ = self._child.communicate()
        return out


class CpuMeter:
    """CPU seconds a process used between enter and exit (user + system)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.seconds = 0.0

    def _now(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def __enter__(self) -> "CpuMeter":
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = self._now() - self._start


def mib(n_bytes: float) -> float:
    """Return bytes as MiB."""
    return n_bytes / MIB


def ms(seconds: float) -> float:
    """Return seconds as milliseconds."""
    return seconds * 1000


def heading(text: str) -> None:
    """Print a section heading, with the machine's load: other work skews every figure."""
    print(f"\n== {text} ==\n{load_note()}", flush=True)


def load_note() -> str:
    """Return the load averages, CPU pressure and core count: was the machine quiet?"""
    one, five, _ = os.getloadavg()
    note = f"(load average {one:.2f} / {five:.2f} over 1 / 5 min, {os.cpu_count()} cores"
    try:  # Linux PSI: share of time some runnable task waited for a CPU
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        fields = dict(part.split("=") for part in first.split()[1:])
        note += f"; CPU pressure {fields['avg60']}% over 1 min"
    except (OSError, IndexError, KeyError, ValueError):
        pass
    return note + ")"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print rows as an aligned text table (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for row, raw in zip(cells, rows, strict=True):
        parts = [
            v.rjust(w) if isinstance(r, int | float) else v.ljust(w)
            for v, w, r in zip(row, widths, raw, strict=True)
        ]
        print("  ".join(parts).rstrip())
    sys.stdout.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


@dataclass
class Figure:
    """One line of a summary: which benchmark, what was measured, the value and its unit."""

    bench: str
    name: str
    value: float | int | str
    unit: str = ""


def print_figures(figures: Sequence[Figure]) -> None:
    """Print figures as a table."""
    print_table(
        ["benchmark", "figure", "value", "unit"],
        [(f.bench, f.name, f.value, f.unit) for f in figures],
    )


def log_lines(text: str, *needles: str) -> list[str]:
    """Return the lines of a server log that contain any of `needles` (case-insensitive)."""
    wanted = [n.lower() for n in needles]
    return [line for line in text.splitlines() if any(n in line.lower() for n in wanted)]


def elapsed_since(start: float) -> float:
    """Return seconds since `start` (a time.perf_counter value)."""
    return time.perf_counter() - start
