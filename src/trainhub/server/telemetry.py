"""Prometheus metrics of a server process: requests, latencies, upload bytes, streams, active runs.

`Telemetry` holds one registry per app (tests build many apps in one process) and is fed by
`MetricsMiddleware`, a plain ASGI middleware that sees every request: its route template (never
the raw path, which holds ids and download tokens), status, duration, the bytes of its body, and
whether its answer is a live event stream. Active runs are counted by a database query when
/metrics is read (api/monitoring.py). Nothing here holds a credential or a user's name.

One process, one registry: `trainhub server` runs one process per replica, and Prometheus scrapes
each replica. Running several worker processes per replica would need prometheus_client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR, gauges with a `multiprocess_mode`, the active-runs
gauge read from any one process); see docs/decisions/0016-metrics-access.md.
"""

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from trainhub._version import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"  # a path no route matched: not its text, which anyone can choose
BODY_METHODS = {"POST", "PUT", "PATCH"}
# from a quick answer to a large upload (a 2 GiB file over a slow link takes minutes)
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class ActiveRuns(Collector):
    """The number of models whose trainer sent a heartbeat recently, read at scrape time."""

    def __init__(self, count: Callable[[], int]) -> None:
        self._count = count

    def collect(self) -> Any:
        """Yield the gauge (the query runs now)."""
        gauge = GaugeMetricFamily(
            "trainhub_active_runs", "Models whose trainer is online (heartbeats arriving)."
        )
        gauge.add_metric([], self._count())
        yield gauge


class Telemetry:
    """The metrics of one app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "trainhub_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "trainhub_http_request_duration_seconds",
            "Time from a request's start to the end of its answer, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.upload_bytes = Counter(
            "trainhub_upload_bytes",
            "Bytes of request bodies received (uploads, JSON), by route template.",
            ["route"],
            registry=self.registry,
        )
        self.live_streams = Gauge(
            "trainhub_live_streams",
            "Live event streams (the dashboard's live updates) open now.",
            registry=self.registry,
        )
        info = Gauge("trainhub_info", "The trainhub version.", ["version"], registry=self.registry)
        info.labels(version=__version__).set(1)

    def count_active_runs(self, count: Callable[[], int]) -> None:
        """Report the active runs that `count` returns, each time the metrics are read."""
        self.registry.register(ActiveRuns(count))

    def render(self) -> bytes:
        """Return every metric in Prometheus' text format."""
        return generate_latest(self.registry)


def _route_of(scope: dict[str, Any]) -> str:
    route = scope.get("route")
    return str(getattr(route, "path", UNMATCHED)) if route is not None else UNMATCHED


class MetricsMiddleware:
    """Count every HTTP request into a Telemetry (an ASGI middleware; streams pass untouched)."""

    def __init__(self, app: Any, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on, noting its body size, status and whether it streams events."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        received = 0
        status = 500  # if the app fails before it answers
        streaming = False

        async def counting_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def watching_send(message: Any) -> None:
            nonlocal status, streaming
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"text/event-stream"):
                    streaming = True
                    self.telemetry.live_streams.inc()
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        finally:
            if streaming:
                self.telemetry.live_streams.dec()
            self._record(scope, status, received, time.perf_counter() - started)

    def _record(self, scope: dict[str, Any], status: int, received: int, elapsed_s: float) -> None:
        route, method = _route_of(scope), str(scope.get("method", "?"))
        self.telemetry.requests.labels(method, route, str(status)).inc()
        self.telemetry.latency.labels(method, route).observe(elapsed_s)
        if method in BODY_METHODS and received:
            self.telemetry.upload_bytes.labels(route).inc(received)
