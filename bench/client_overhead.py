"""Client overhead: what `HUBTrainingSession` costs the training thread per call, hub up or not.

Times, with `time.perf_counter_ns`, the two calls a training loop makes:

- metrics: `session.metrics_queue[e] = json.dumps(<20 values>); session.upload_metrics()`
- checkpoint: `session.upload_model(e, "last.pt")` (a 1 MiB file written once beforehand)

`--calls` of each (default 2,000) against a session of a real `trainhub server` process, in
three states of the hub:

- up: the server answers (the upload thread sends metrics every 3 s and the first checkpoint
  at once, as in a real run);
- down: the session was created while the server was up, then the server was killed with
  SIGKILL: nothing listens on the port, every connection is refused;
- hanging: the session talks to the server through tests/e2e/faults.py's FaultProxy, which, once
  the session exists, accepts connections but never forwards a byte (a hub that hangs: the
  upload thread waits out its 30 s request timeouts).

Prints p50/p99/max wall time per call and the calling thread's CPU time per call (which leaves
out time spent preempted or waiting for the GIL), a reference row (json.dumps alone, timed the
same way: the machine's own jitter), and what was left in the outbox. Nothing is asserted.

Run: .venv/bin/python bench/client_overhead.py [--calls 2000]
"""

import argparse
import json
import logging
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import METRIC_NAMES, Figure, bench_server, heading, percentile, print_table

from tests.e2e.faults import FaultProxy
from trainhub import HUBTrainingSession
from trainhub.client.outbox import Outbox

BENCH = "client_overhead"


def values(epoch: int) -> dict[str, float]:
    """20 metric values, as a trainer would have them in a dict before json.dumps."""
    return {name: 1.0 / (1 + epoch + i) for i, name in enumerate(METRIC_NAMES)}


REFERENCE_VALUES = values(0)


@dataclass
class Timings:
    """Per-call wall time and CPU time of the calling thread, in microseconds."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def time_calls(calls: int, first_epoch: int, call: Callable[[int], None]) -> Timings:
    """Run `call(epoch)` `calls` times; keep each call's wall time and the thread's CPU time.

    Wall time is what the training loop waits; CPU time leaves out the time the thread was not
    running (preempted by other processes, or waiting for the GIL held by another thread).
    """
    timings = Timings()
    for epoch in range(first_epoch, first_epoch + calls):
        cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
        call(epoch)
        timings.wall.append((time.perf_counter_ns() - wall) / 1000)
        timings.cpu.append((time.thread_time_ns() - cpu) / 1000)
    return timings


def dumps_only(epoch: int) -> None:
    """The reference: json.dumps of one epoch's values, the part no client can avoid."""
    json.dumps(REFERENCE_VALUES)


def measure(session: HUBTrainingSession, calls: int, checkpoint: Path) -> dict[str, Timings]:
    """Time the metrics call, then the checkpoint call, `calls` times each."""
    prepared = {e: values(e) for e in range(calls)}

    def metrics(epoch: int) -> None:
        session.metrics_queue[epoch] = json.dumps(prepared[epoch])
        session.upload_metrics()

    def upload_model(epoch: int) -> None:
        session.upload_model(epoch, checkpoint)

    return {
        "metrics": time_calls(calls, 0, metrics),
        "checkpoint": time_calls(calls, 0, upload_model),
    }


def new_session(url: str, key: str, model_id: str, workdir: Path, name: str) -> HUBTrainingSession:
    return HUBTrainingSession(
        model_id,
        url=url,
        api_key=key,
        outbox=Outbox(workdir / f"outbox-{name}.sqlite3"),
        weights_dir=workdir / "weights",
        progress=False,
    )


def run(calls: int) -> list[Figure]:
    heading(f"client overhead: {calls:,} calls of each kind on the training thread")
    logging.basicConfig(level=logging.ERROR)  # the down/hanging runs would log every retry
    results: dict[str, dict[str, Timings]] = {}
    left: dict[str, tuple[int, int]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="trainhub-bench-client-") as tmp,
        bench_server("client-overhead") as srv,
        httpx.Client(headers=srv.headers, timeout=60) as api,
    ):
        workdir = Path(tmp)
        checkpoint = workdir / "last.pt"
        checkpoint.write_bytes(bytes(1024 * 1024))
        proxy = FaultProxy(int(srv.url.rsplit(":", 1)[1])).start()
        try:
            up = new_session(srv.url, srv.key, srv.create_model(api), workdir, "up")
            down = new_session(srv.url, srv.key, srv.create_model(api), workdir, "down")
            hanging = new_session(proxy.url, srv.key, srv.create_model(api), workdir, "hanging")

            reference = time_calls(calls, 0, dumps_only)
            results["up"] = measure(up, calls, checkpoint)
            left["up"] = up.outbox.counts(up.client.url, str(up.model_id))
            print(f"up: finish() sent the rest: {up.finish(timeout_s=120)}")

            proxy.delay_s = 3600.0  # from now on no byte goes through
            proxy.drop_all()
            results["hanging"] = measure(hanging, calls, checkpoint)
            left["hanging"] = hanging.outbox.counts(hanging.client.url, str(hanging.model_id))

            srv.server.kill(signal.SIGKILL)
            results["down"] = measure(down, calls, checkpoint)
            left["down"] = down.outbox.counts(down.client.url, str(down.model_id))
            for session in (hanging, down):
                session.finish(timeout_s=0.5)
        finally:
            proxy.close()

    rows = [row("-", "json.dumps only (reference)", reference)]
    figures = []
    for state in ("up", "down", "hanging"):
        for kind in ("metrics", "checkpoint"):
            timings = results[state][kind]
            rows.append(row(state, kind, timings))
            for pct in (50, 99):
                value = round(percentile(timings.wall, pct), 1)
                figures.append(Figure(BENCH, f"hub {state}: {kind} p{pct}", value, "us"))
    print_table(
        [
            "hub",
            "call",
            "calls",
            "p50 us",
            "p99 us",
            "max us",
            "calls > 1 ms",
            "CPU p50 us",
            "CPU p99 us",
            "CPU max us",
        ],
        rows,
    )
    for state, (metrics_left, uploads_left) in left.items():
        print(
            f"outbox after the {state} run: {metrics_left} epochs of metrics and "
            f"{uploads_left} upload(s) pending"
        )
    return figures


def row(state: str, kind: str, timings: Timings) -> tuple[object, ...]:
    wall, cpu = timings.wall, timings.cpu
    return (
        state,
        kind,
        len(wall),
        round(percentile(wall, 50), 1),
        round(percentile(wall, 99), 1),
        round(max(wall), 1),
        sum(1 for us in wall if us > 1000),
        round(percentile(cpu, 50), 1),
        round(percentile(cpu, 99), 1),
        round(max(cpu), 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls of each kind per run")
    args = parser.parse_args()
    run(args.calls)


if __name__ == "__main__":
    main()
