"""Overload: far more clients than the hub can serve, with admission control on and off.

wrk drives many more connections than the hub has request slots (default 64 per process) at
two paths: the metrics ingest (`POST /v1/models/{id}`, cheap, async) and the models list
(`GET /v1/models?limit=100`, a database read in the thread pool). For each, with the defaults
(TRAINHUB_MAX_REQUESTS_IN_FLIGHT=64, TRAINHUB_ADMISSION_WAIT_S=0.25) and with admission off
(a cap of 100,000): answers per second, the share refused with 503, and the latency (p50, p99,
max) of every answer, refusals included. The goal (docs/performance.md, "Overload"): every
answer within 1 s, the refusals fast, and every accepted epoch stored.

Run: .venv/bin/python bench/overload.py [--seconds 10] [--connections 1024]
"""

import argparse
import re
import subprocess

import httpx
from common import Figure, bench_server, heading, load_note, print_table
from hotpaths import HERE, WRK, stored_epochs

BENCH = "overload"
OFF = {"TRAINHUB_MAX_REQUESTS_IN_FLIGHT": "100000"}


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def flood(url: str, script: str, connections: int, seconds: int, *args: str) -> dict[str, float]:
    """Run wrk; return answers/s, requests, non-2xx answers, timeouts and latencies (s)."""
    command = [WRK, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    command += ["-s", str(HERE / "wrk" / script), url, "--", *args]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, re.MULTILINE))
    worst = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1)  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    timeouts = re.search(r"Socket errors: .*timeout (\d+)", out)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    refused = int(non_2xx.group(1)) if non_2xx else 0
    return {
        "rps": (requests - refused) / seconds,
        "requests": requests,
        "refused": refused,
        "timeouts": int(timeouts.group(1)) if timeouts else 0,
        "p50": _seconds(latency["50"]),
        "p99": _seconds(latency["99"]),
        "max": _seconds(worst),
    }


def run(seconds: int, connections: int) -> list[Figure]:
    heading(f"overload: {connections} connections for {seconds} s per path ({load_note()})")
    rows, figures = [], []
    for label, env in (("admission on (defaults)", {}), ("admission off", OFF)):
        with bench_server("overload", env) as hub:
            with httpx.Client(headers=hub.headers, timeout=60) as client:
                model_id = hub.create_model(client)
                for _ in range(100):
                    hub.create_model(client)
            ingest = flood(hub.url, "epoch.lua", connections, seconds, model_id, hub.key)
            stored = stored_epochs(hub, model_id)
            listing = flood(
                hub.url, "get.lua", connections // 2, seconds, "/v1/models?limit=100", hub.key
            )
        accepted = ingest["requests"] - ingest["refused"]
        for name, result, conns in (
            ("epoch POST", ingest, connections),
            ("GET /v1/models", listing, connections // 2),
        ):
            rows.append(
                [
                    f"{name}, {conns} conn, {label}",
                    f"{result['rps']:.0f}",
                    f"{result['refused'] / max(result['requests'], 1):.0%}",
                    f"{result['p50'] * 1000:.0f}",
                    f"{result['p99'] * 1000:.0f}",
                    f"{result['max'] * 1000:.0f}",
                    f"{result['timeouts']:.0f}",
                ]
            )
        rows.append([f"  epochs accepted {accepted:.0f}, stored {stored}", "", "", "", "", "", ""])
        if label.startswith("admission on"):
            figures.append(Figure(BENCH, "ingest p99 at overload", ingest["p99"] * 1000, "ms"))
            figures.append(Figure(BENCH, "list p99 at overload", listing["p99"] * 1000, "ms"))
            figures.append(Figure(BENCH, "accepted epochs lost", max(0, accepted - stored)))
    print_table(["path", "answers/s (2xx)", "503", "p50 ms", "p99 ms", "max ms", "timeouts"], rows)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=1024)
    args = parser.parse_args()
    run(args.seconds, args.connections)


if __name__ == "__main__":
    main()
