"""A latency probe: GET a URL at an interval until stdin closes, then print the latencies.

Run by `common.LatencyProbe` as a process of its own, so that the probe shares no GIL with the
benchmark's client. Prints "ready" once a first GET (not counted) succeeded, then, when a line
arrives on stdin or stdin closes, one JSON line: {"latencies": [seconds...], "errors": n}. The
request headers (an API key among them) come as JSON in the environment variable
PROBE_HEADERS, not on the command line, which every user of the machine can read.

Run: PROBE_HEADERS='{...}' python bench/probe.py URL INTERVAL_S MAX_REQUESTS
"""

import json
import os
import select
import sys
import time

import httpx


def main() -> None:
    url, headers = sys.argv[1], json.loads(os.environ.get("PROBE_HEADERS", "{}"))
    interval_s, max_requests = float(sys.argv[2]), int(sys.argv[3])
    latencies: list[float] = []
    errors = 0
    with httpx.Client(headers=headers, timeout=60) as client:
        client.get(url).raise_for_status()  # connected and warm before the measured part
        print("ready", flush=True)
        for _ in range(max_requests):
            if select.select([sys.stdin], [], [], interval_s)[0]:
                break  # the benchmark says stop
            start = time.perf_counter()
            try:
                client.get(url).raise_for_status()
                latencies.append(time.perf_counter() - start)
            except httpx.HTTPError:
                errors += 1
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)


if __name__ == "__main__":
    main()
