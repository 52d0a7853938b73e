"""/docs and /redoc work offline and load nothing from elsewhere onto the dashboard's origin.

FastAPI's pages load Swagger UI and ReDoc from a CDN, without subresource integrity, and start
Swagger UI with an inline script. The hub serves vendored copies under a Content Security
Policy that allows this origin only; a real browser with every other host cut off renders both.
"""

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route, expect, sync_playwright

from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS
from tests.servers import RunningServer, start_server
from trainhub.server.web import STATIC_DIR

PAGES = ("/docs", "/redoc")
EXTERNAL_URL = re.compile(r"(?:https?:)?//[^\s\"'<>]+", re.IGNORECASE)
LOCAL_REFERENCE = re.compile(r"""(?:src|href)="([^"]+)\"""")
# What a source of the policy may be: this origin, nothing, inline data, or a fixed hash; and
# for workers, blob: URLs (only this page's scripts can make them).
ALLOWED_SOURCES = re.compile(r"'self'|'none'|data:|'sha256-[A-Za-z0-9+/]{43}='")
ALLOWED_WORKER_SOURCES = re.compile(r"'self'|blob:")
# ReDoc's footer logo is an <img> from its CDN that the policy blocks (it hides itself then).
REDOC_LOGO_BLOCKED = re.compile(
    r"console error: Loading the image 'https://cdn\.redoc\.ly/redoc/logo-mini\.svg' violates "
    r"the following Content Security Policy directive: \"img-src 'self' data:\"\. "
    r"The action has been blocked\."
)


@pytest.mark.parametrize("path", PAGES)
def test_the_page_references_nothing_outside_this_origin(anon, path: str) -> None:
    page = anon.get(path)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL_URL.findall(page.text), page.text
    assert "<script>" not in page.text  # no inline script: every script has a src
    references = LOCAL_REFERENCE.findall(page.text)
    assert any(ref.endswith(".js") for ref in references), references
    for reference in references:
        if reference.startswith("data:"):
            continue
        assert reference.startswith("/static/"), reference
        asset = anon.get(reference)
        assert asset.status_code == 200, reference
        assert len(asset.content) > 100, reference


@pytest.mark.parametrize("path", PAGES)
def test_the_page_carries_a_policy_that_allows_this_origin_only(anon, path: str) -> None:
    policy = anon.get(path).headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    for name, sources in directives.items():
        allowed = ALLOWED_WORKER_SOURCES if name == "worker-src" else ALLOWED_SOURCES
        for source in sources.split():
            assert allowed.fullmatch(source), f"{name} allows {source}"


def test_the_vendored_assets_are_served_and_licensed(anon) -> None:
    for folder, files in {
        "swagger-ui": ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE", "NOTICE"),
        "redoc": ("redoc.standalone.js", "LICENSE"),
    }.items():
        for name in files:
            assert (STATIC_DIR / "vendor" / folder / name).is_file(), (folder, name)
        assert anon.get(f"/static/vendor/{folder}/{files[0]}").status_code == 200


# --- in a browser, offline ---


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("docs")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def offline(browser: Browser, hub: RunningServer) -> Iterator[tuple[Page, list[str]]]:
    """A page that can reach the hub and nothing else, and the problems it ran into."""
    problems: list[str] = []
    context = browser.new_context()

    def only_the_hub(route: Route) -> None:
        if route.request.url.startswith(hub.url + "/"):
            route.continue_()
        else:
            problems.append(f"request to {route.request.url}")
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):  # CSP violations are reported as errors
            problems.append(f"console {message.type}: {message.text}")

    context.route("**/*", only_the_hub)
    page = context.new_page()
    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    yield page, problems
    context.close()


def test_swagger_ui_lists_every_route_offline(
    offline: tuple[Page, list[str]], hub: RunningServer
) -> None:
    page, problems = offline
    paths = set(httpx.get(f"{hub.url}/openapi.json").json()["paths"])
    page.goto(f"{hub.url}/docs")
    expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
    shown = page.locator(".opblock-summary-path").evaluate_all(
        "elements => elements.map(e => e.dataset.path)"
    )
    assert set(shown) == paths, set(shown) ^ paths
    assert len(paths) >= 25
    assert not problems, problems


def test_redoc_shows_the_api_offline(offline: tuple[Page, list[str]], hub: RunningServer) -> None:
    page, problems = offline
    page.goto(f"{hub.url}/redoc")
    expect(page.get_by_text("Download OpenAPI specification")).to_be_visible(timeout=15_000)
    expect(page.locator("[role=menuitem]", has_text="datasets").first).to_be_visible()
    assert page.get_by_text("/v1/models/{model_id}/metrics").count() >= 1
    page.get_by_placeholder("Search...").fill("heartbeat")  # the search worker runs
    results = page.get_by_role("search").get_by_role("menuitem")
    expect(results.first).to_be_visible(timeout=15_000)
    unexpected = [problem for problem in problems if not REDOC_LOGO_BLOCKED.fullmatch(problem)]
    assert not unexpected, unexpected
