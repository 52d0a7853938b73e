"""Dashboard first chart paint: a model with 1,000 epochs x 30 metrics, opened in headless chromium.

Seeds one model through the API (batches of 200 epochs), signs in once through the sign-in form,
then opens the model page `--runs` times, each in a fresh browser context (empty cache: the
HTML, scripts, styles and chart data all come over the wire). The page's chart code sets the
performance marks `trainhub:first-chart` (uPlot's first draw) and `trainhub:charts-ready` (all 30
charts built); their times since navigation start are reported as p50, min and max. The goal
is under one second.

Needs Debian's chromium (scripts/install-chromium.sh) and the `playwright` package.

Run: .venv/bin/python bench/first_paint.py [--runs 5] [--epochs 1000] [--metrics 30]
"""

import argparse
import json
import time

import httpx
from common import Figure, bench_server, heading, ms, percentile, print_table
from playwright.sync_api import Browser, StorageState, sync_playwright

BENCH = "first_paint"
BATCH = 200
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PREFIXES = ("train", "val", "metrics", "lr", "model")


def metric_names(count: int) -> list[str]:
    """Return `count` metric names spread over the usual prefixes."""
    return [f"{PREFIXES[i % len(PREFIXES)]}/m{i:02d}_loss" for i in range(count)]


def seed(client: httpx.Client, url: str, epochs: int, names: list[str]) -> str:
    """Create a model and upload `epochs` epochs of `names`; return the model id."""
    body = {"meta": {"name": "first-paint"}, "config": {"epochs": epochs}}
    created = client.post(f"{url}/v1/models", json=body)
    created.raise_for_status()
    model_id = str(created.json()["data"]["id"])
    for first in range(0, epochs, BATCH):
        batch = {
            str(e): json.dumps({n: 1.0 / (1 + e + i) + (e % 7) * 1e-3 for i, n in enumerate(names)})
            for e in range(first, min(first + BATCH, epochs))
        }
        answer = client.post(
            f"{url}/v1/models/{model_id}", json={"type": "metrics", "metrics": batch}
        )
        answer.raise_for_status()
    return model_id


def sign_in(browser: Browser, url: str, key: str) -> StorageState:
    """Sign in through the form once; return the browser storage state (the session cookie)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{url}/login")
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("h1")
    state = context.storage_state()
    context.close()
    return state


def measure(browser: Browser, state: StorageState, page_url: str) -> tuple[float, float]:
    """Open the model page in a fresh context; return (first chart, all charts) in ms."""
    context = browser.new_context(storage_state=state, viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(page_url)
    page.wait_for_selector("#charts figure canvas", timeout=30_000)
    deadline = time.monotonic() + 30
    marks: list[float | None] = [None, None]
    while None in marks and time.monotonic() < deadline:
        # page.evaluate, not wait_for_function: the page's CSP forbids evaluating strings
        marks = page.evaluate(
            "['trainhub:first-chart', 'trainhub:charts-ready']"
            ".map(n => (performance.getEntriesByName(n)[0] || {}).startTime ?? null)"
        )
        time.sleep(0.02)
    context.close()
    if None in marks:
        raise RuntimeError("the page did not set its chart marks within 30 s")
    return float(marks[0] or 0), float(marks[1] or 0)


def run(runs: int = 5, epochs: int = 1000, metrics: int = 30) -> list[Figure]:
    """Seed, measure, print and return the figures."""
    heading(f"dashboard first chart paint: {epochs} epochs x {metrics} metrics, {runs} cold loads")
    names = metric_names(metrics)
    with bench_server("first-paint") as srv, httpx.Client(headers=srv.headers, timeout=120) as c:
        model_id = seed(c, srv.url, epochs, names)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            state = sign_in(browser, srv.url, srv.key)
            cookies = {c["name"]: c["value"] for c in state["cookies"]}
            start = time.perf_counter()
            chart = httpx.get(f"{srv.url}/models/{model_id}/chart.json", cookies=cookies)
            chart_ms = ms(time.perf_counter() - start)
            chart.raise_for_status()
            measure(browser, state, f"{srv.url}/models/{model_id}")  # warm the server up
            samples = [measure(browser, state, f"{srv.url}/models/{model_id}") for _ in range(runs)]
            browser.close()
    first = [s[0] for s in samples]
    ready = [s[1] for s in samples]
    data = chart.json()
    print_table(
        ["figure", "p50 ms", "min ms", "max ms"],
        [
            ("first chart painted", percentile(first, 50), min(first), max(first)),
            ("all charts built", percentile(ready, 50), min(ready), max(ready)),
        ],
    )
    print(
        f"chart data: {len(chart.content) / 1024:.0f} KiB, {len(data['epochs'])} points per "
        f"series of {data['total']} epochs (downsampled: {data['downsampled']}), "
        f"{len(data['series'])} series, served in {chart_ms:.0f} ms"
    )
    return [
        Figure(BENCH, "first chart paint p50", round(percentile(first, 50)), "ms"),
        Figure(BENCH, "all charts built p50", round(percentile(ready, 50)), "ms"),
        Figure(BENCH, "chart data", round(len(chart.content) / 1024), "KiB"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=30)
    args = parser.parse_args()
    run(args.runs, args.epochs, args.metrics)


if __name__ == "__main__":
    main()
