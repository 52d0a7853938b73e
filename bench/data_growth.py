"""Flat as the data grows: the same requests on an empty hub and on a full one.

Fills a hub through its API with 10,000 models, 2,000 of them with 300 epochs x 20 metrics, one
with 3,000 epochs and one with 10,000 epochs x 30 metrics, then measures:
- the server CPU of one trainer's epoch POSTs (wrk, 1 connection), on the empty hub and the full
  one (goal: within 20 %);
- the models list: `GET /v1/models` (first page and a page 5,000 models deep) and the dashboard's
  `/models` (50 rows), p50 (goal: 50 ms);
- the dashboard's chart data of the 10,000-epoch model (goal: 100 ms): its first request, the
  p50 of the requests answered from the cache, and the request after each of 12 new epochs;
- the metrics read-back of the 300-, 3,000- and 10,000-epoch models, per point (goal: linear);
and prints the query plans of the list and of the metrics reads.

Run: .venv/bin/python bench/data_growth.py [--database-url postgresql+psycopg://...] [--models N]
A PostgreSQL URL gets a fresh schema of its own, dropped at the end.
"""

import argparse
import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
from common import (
    BenchServer,
    Figure,
    bench_server,
    heading,
    metrics_body,
    ms,
    percentile,
    print_table,
)
from hotpaths import wrk
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

BENCH = "data_growth"
ENV = {"TRAINHUB_WEB_RATE_LIMIT": "100000/second", "TRAINHUB_WEB_CHART_RATE_LIMIT": "100000/second"}
WIDE = [f"metrics/m{i:02d}" for i in range(30)]


@contextmanager
def database(url: str | None) -> Iterator[dict[str, str]]:
    """Yield the env of the database to bench on: SQLite by default, else a fresh PG schema."""
    if url is None:
        yield {}
        return
    schema = f"bench_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield {"TRAINHUB_DATABASE_URL": scoped.render_as_string(hide_password=False)}
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def wide_body(epochs: range) -> dict[str, object]:
    values = {name: 1.0 / (i + 2) for i, name in enumerate(WIDE)}
    return {"metrics": {str(e): json.dumps({**values, "epoch": e}) for e in epochs}}


def fill(hub: BenchServer, models: int, trained: int) -> dict[str, str]:
    """Create `models` models, `trained` of them with 300 epochs; return named special ones."""

    def create(_: int) -> str:
        with httpx.Client(headers=hub.headers, timeout=60) as client:
            return hub.create_model(client)

    def train(model_id: str, epochs: int = 300, batch: int = 30, body=metrics_body) -> None:
        with httpx.Client(headers=hub.headers, timeout=120) as client:
            for start in range(0, epochs, batch):
                chunk = range(start, min(epochs, start + batch))
                answer = client.post(f"{hub.url}/v1/models/{model_id}", json=body(chunk))
                answer.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(create, range(models)))
        list(pool.map(train, ids[:trained]))
    special = {"300": ids[0], "3000": ids[-1], "10000": ids[-2]}
    train(special["3000"], 3000, 100)
    train(special["10000"], 10_000, 100, wide_body)
    print(f"filled in {time.perf_counter() - started:.0f} s: {models} models, {trained} trained")
    return special


def timed(client: httpx.Client, url: str, repeat: int) -> float:
    """Return the p50 seconds of `repeat` GETs of `url` (after one to warm up)."""
    return timed_first(client, url, repeat)[1]


def timed_first(client: httpx.Client, url: str, repeat: int) -> tuple[float, float]:
    """Return the seconds of a first GET of `url`, and the p50 of `repeat` more."""
    started = time.perf_counter()
    client.get(url).raise_for_status()
    first = time.perf_counter() - started
    latencies = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url).raise_for_status()
        latencies.append(time.perf_counter() - started)
    return first, percentile(latencies, 50)


def after_new_epochs(
    hub: BenchServer, browser: httpx.Client, model_id: str, rounds: int = 12
) -> list[float]:
    """Return the seconds of the chart request after each of `rounds` new epochs of the model."""
    latencies = []
    with httpx.Client(headers=hub.headers, timeout=60) as trainer:
        for epoch in range(10_000, 10_000 + rounds):
            body = wide_body(range(epoch, epoch + 1))
            trainer.post(f"{hub.url}/v1/models/{model_id}", json=body).raise_for_status()
            started = time.perf_counter()
            browser.get(f"/models/{model_id}/chart.json").raise_for_status()
            latencies.append(time.perf_counter() - started)
    return latencies


def signed_in(hub: BenchServer) -> httpx.Client:
    """Return a client signed in to the dashboard with the bench user's key."""
    client = httpx.Client(base_url=hub.url, timeout=60, headers={"accept": "text/html"})
    page = client.get("/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    client.post("/login", data={"api_key": hub.key, "csrf_token": token, "next": "/models"})
    return client


def plans(database_url: str) -> list[str]:
    """Return the query plans of the models list and of the metrics read."""
    engine = create_engine(database_url)
    explain = "EXPLAIN QUERY PLAN" if engine.dialect.name == "sqlite" else "EXPLAIN"
    queries = {
        "models list": "SELECT * FROM models WHERE deleted_at IS NULL AND owner_id = :o "
        "ORDER BY seq DESC LIMIT 11",
        "models count": "SELECT count(*) FROM models WHERE deleted_at IS NULL AND owner_id = :o",
        "metrics read": 'SELECT epoch, "values" FROM metrics WHERE model_seq = :s ORDER BY epoch',
    }
    lines = []
    with engine.connect() as conn:
        owner = conn.execute(text("SELECT id FROM users WHERE name = 'bench'")).scalar_one()
        for name, sql in queries.items():
            rows = conn.execute(text(f"{explain} {sql}"), {"o": owner, "s": 1}).all()
            lines.append(f"{name}: " + " | ".join(str(r[-1]) for r in rows))
    engine.dispose()
    return lines


def measure(hub: BenchServer, label: str) -> dict[str, float]:
    """Return the server CPU per epoch POST of one trainer on the hub as it is."""
    with httpx.Client(headers=hub.headers, timeout=60) as client:
        model_id = hub.create_model(client)
    run = wrk(hub.url, "epoch.lua", 1, 10, hub.pid, model_id, hub.key)
    print(f"{label}: {run.rps:.0f} epoch POSTs/s, {run.cpu_ms:.3f} ms server CPU each")
    return {"cpu_ms": run.cpu_ms, "p99_ms": run.p99_ms}


def run(models: int, trained: int, database_url: str | None) -> list[Figure]:
    heading(f"data growth: {models} models, {trained} x 300 epochs x 20 metrics")
    with database(database_url) as env, bench_server("growth", {**ENV, **env}) as hub:
        empty = measure(hub, "empty hub")
        special = fill(hub, models, trained)
        full = measure(hub, "full hub")
        with httpx.Client(base_url=hub.url, headers=hub.headers, timeout=60) as client:
            first = timed(client, "/v1/models?limit=10", 30)
            deep_cursor = client.get("/v1/models?limit=100").json()["data"]["lastRecordId"]
            for _ in range(49):  # walk 5,000 models down
                page = client.get(f"/v1/models?limit=100&last_doc_id={deep_cursor}").json()
                deep_cursor = page["data"]["lastRecordId"] or deep_cursor
            deep = timed(client, f"/v1/models?limit=10&last_doc_id={deep_cursor}", 30)
            readback = {n: timed(client, f"/v1/models/{special[n]}/metrics", 10) for n in special}
        browser = signed_in(hub)
        try:
            dashboard = timed(browser, "/models", 20)
            chart_first, chart = timed_first(browser, f"/models/{special['10000']}/chart.json", 10)
            chart_new = after_new_epochs(hub, browser, special["10000"])
        finally:
            browser.close()
        database_url = env.get("TRAINHUB_DATABASE_URL") or (
            f"sqlite:///{hub.server.data_dir / 'trainhub.db'}"
        )
        query_plans = plans(database_url)
    points = {"300": 300 * 20, "3000": 3000 * 20, "10000": 10_000 * 31}
    rows = [
        ["epoch POST server CPU, empty hub", f"{empty['cpu_ms']:.3f} ms", ""],
        [
            "epoch POST server CPU, full hub",
            f"{full['cpu_ms']:.3f} ms",
            f"{full['cpu_ms'] / empty['cpu_ms'] - 1:+.0%} (goal within 20 %)",
        ],
        ["GET /v1/models first page (10), p50", f"{ms(first):.1f} ms", "goal 50 ms"],
        ["GET /v1/models 5,000 deep (10), p50", f"{ms(deep):.1f} ms", "goal 50 ms"],
        ["dashboard /models (50 rows), p50", f"{ms(dashboard):.1f} ms", "goal 50 ms"],
        ["chart data, 10,000 epochs x 30 metrics, first", f"{ms(chart_first):.1f} ms", "computed"],
        ["chart data, 10,000 epochs x 30 metrics, p50", f"{ms(chart):.1f} ms", "goal 100 ms"],
        [
            "chart data after each of 12 new epochs, p50 / max",
            f"{ms(percentile(chart_new, 50)):.1f} / {ms(max(chart_new)):.1f} ms",
            "goal 100 ms",
        ],
    ]
    for n, seconds in readback.items():
        per_point = seconds / points[n] * 1e6
        rows.append(
            [
                f"metrics read-back, {n} epochs, p50",
                f"{ms(seconds):.1f} ms",
                f"{per_point:.2f} us per point",
            ]
        )
    print_table(["figure", "value", "note"], rows)
    for line in query_plans:
        print("plan " + line)
    return [
        Figure(BENCH, "epoch POST CPU, full / empty", round(full["cpu_ms"] / empty["cpu_ms"], 2)),
        Figure(BENCH, "models list p50", round(ms(first), 1), "ms"),
        Figure(BENCH, "dashboard list p50", round(ms(dashboard), 1), "ms"),
        Figure(BENCH, "chart data 10k x 30 p50", round(ms(chart), 1), "ms"),
        Figure(BENCH, "chart data after a new epoch, max", round(ms(max(chart_new)), 1), "ms"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--trained", type=int, default=2_000)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL (default SQLite)")
    args = parser.parse_args()
    run(args.models, args.trained, args.database_url)


if __name__ == "__main__":
    main()
