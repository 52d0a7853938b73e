"""The dashboard in a real browser (Debian's chromium via Playwright) against a real server.

A "trainer" thread plays a training process over HTTP: it creates a model, beats every second
with `interval: 1` (so the hub calls it offline after 2 s of silence), posts one metrics epoch per
second and uploads a checkpoint; then it stops, as a killed trainer would. Screenshots of the main
pages are saved under test-artifacts/screenshots/.
"""

import hashlib
import io
import json
import os
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, FilePayload, Page, expect, sync_playwright

from tests.factories import dataset_zip
from tests.servers import RunningServer, start_server

# serial: the trainer paces itself at one epoch a second and the page must follow it within
# LIVE_TIMEOUT_MS; chromium beside a model training on the other worker makes that load-dependent.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

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
SCREENSHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
EPOCHS = 8
LIVE_TIMEOUT_MS = 15_000


class Trainer(threading.Thread):
    """A training process talking to the hub: heartbeats, metrics each second, a checkpoint."""

    def __init__(self, url: str, key: str, checkpoint: bytes) -> None:
        super().__init__(daemon=True)
        self.client = httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=10)
        self.checkpoint = checkpoint
        self.model_id = ""
        self.created = threading.Event()
        self.stopped = threading.Event()
        self.error: BaseException | None = None

    def _post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        answer = self.client.post(path, **kwargs)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()["data"]
        return data

    def _train(self) -> None:
        body = {"meta": {"name": "live-run"}, "config": {"epochs": EPOCHS, "imageSize": 64}}
        self.model_id = self._post("/v1/models", json=body)["id"]
        self.created.set()
        agent_id = None
        for epoch in range(EPOCHS):
            if self.stopped.is_set():
                return
            beat = {"agent": "e2e-trainer", "agentId": agent_id, "interval": 1}
            agent_id = self._post(f"/v1/agent/heartbeat/models/{self.model_id}", json=beat)[
                "agentId"
            ]
            values = {"train/box_loss": 2.0 / (epoch + 1), "metrics/mAP50-95(B)": epoch / 10}
            metrics = {"type": "metrics", "metrics": {str(epoch): json.dumps(values)}}
            self._post(f"/v1/models/{self.model_id}", json=metrics)
            if epoch == EPOCHS - 3:  # late enough that the model page is open by then
                files = {"last.pt": ("last.pt", self.checkpoint)}
                fields = {"epoch": str(epoch), "type": "epoch", "isBest": "True"}
                self._post(f"/v1/models/{self.model_id}/upload", data=fields, files=files)
            self.stopped.wait(1.0)

    def run(self) -> None:
        try:
            self._train()
        except BaseException as exc:  # reported by the test through .error
            self.error = exc
            self.created.set()
        finally:
            self.client.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("dashboard")) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing; install it with scripts/install-chromium.sh")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def signed_in_page(browser: Browser, hub: RunningServer, user: str = "alice") -> Page:
    """Open a fresh browser context and sign in through the form."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    context.set_default_timeout(LIVE_TIMEOUT_MS)
    page = context.new_page()
    page.goto(f"{hub.url}/models")
    expect(page).to_have_url(f"{hub.url}/login?next=%2Fmodels")
    page.get_by_label("API key").fill(hub.keys[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    # The heading shows as soon as it is parsed; htmx and app.js (deferred scripts) bind their
    # handlers later, and on a loaded machine a test could change a filter before they do.
    page.wait_for_load_state()
    return page


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def api(hub: RunningServer, user: str = "alice") -> httpx.Client:
    return httpx.Client(base_url=hub.url, headers={"x-api-key": hub.keys[user]}, timeout=10)


def test_a_training_run_appears_updates_live_goes_offline_and_its_weights_download(
    browser: Browser, hub: RunningServer
) -> None:
    page = signed_in_page(browser, hub)
    expect(page.get_by_text("No models yet: here is how to start one")).to_be_visible()
    screenshot(page, "models-empty")
    page.evaluate("window.__notReloaded = true")
    checkpoint = os.urandom(64 * 1024)
    trainer = Trainer(hub.url, hub.keys["alice"], checkpoint)
    trainer.start()
    try:
        assert trainer.created.wait(10) and trainer.error is None, trainer.error
        row = page.locator(f'tr[data-id="{trainer.model_id}"]')
        expect(row).to_be_visible()
        expect(row.locator("[data-field=status]")).to_have_text("training, online")
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "models-training")

        row.get_by_role("link", name="live-run").click()
        expect(page.get_by_role("heading", name="live-run")).to_be_visible()
        page.evaluate("window.__notReloaded = true")
        epoch = page.get_by_test_id("epoch")
        charts = page.locator("#charts")
        expect(charts.locator("figure[data-metric='train/box_loss'] canvas")).to_be_visible()
        start_text, start_total = epoch.inner_text(), charts.get_attribute("data-total")
        expect(epoch).not_to_have_text(start_text)
        expect(charts).not_to_have_attribute("data-total", start_total or "")
        expect(page.locator("#weights-changed")).to_be_visible()  # the checkpoint arrived
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "model-training")

        trainer.join(EPOCHS + 20)
        assert trainer.error is None, trainer.error
        expect(page.locator(".model-head [data-field=status]")).to_contain_text(
            "training, offline since"
        )
        expect(epoch).to_have_text(f"{EPOCHS} of {EPOCHS}")
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "model-offline")
    finally:
        trainer.stopped.set()
        trainer.join(20)

    page.reload()
    link = page.get_by_role("link", name="Download")
    with page.expect_download() as info:
        link.click()
    saved = Path(info.value.path())
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == hashlib.sha256(checkpoint).hexdigest()
    assert link.get_attribute("data-sha256") == hashlib.sha256(checkpoint).hexdigest()
    page.context.close()


def test_a_dataset_uploads_through_the_page_and_a_bad_one_is_explained(
    browser: Browser, hub: RunningServer
) -> None:
    page = signed_in_page(browser, hub)
    page.get_by_role("link", name="Datasets").click()
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../escape.txt", "x")
    page.get_by_label("Archive").set_input_files(
        files=FilePayload(name="bad.zip", mimeType="application/zip", buffer=bad.getvalue())
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-error")).to_contain_text("..")
    page.get_by_label("Name").fill("Shapes from the browser")
    page.get_by_label("Archive").set_input_files(
        files=FilePayload(name="shapes.zip", mimeType="application/zip", buffer=dataset_zip())
    )
    page.get_by_role("button", name="Upload").click()
    expect(page).to_have_url(f"{hub.url}/datasets?notice=uploaded")
    row = page.locator("#datasets tr", has_text="Shapes from the browser")
    expect(row).to_contain_text("shapes.zip")
    expect(row).to_contain_text("detect")
    screenshot(page, "datasets")
    page.context.close()


def test_a_key_is_created_shown_once_and_revoked(browser: Browser, hub: RunningServer) -> None:
    page = signed_in_page(browser, hub)
    page.get_by_role("link", name="Settings").click()
    page.get_by_label("Name").fill("e2e key")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text().strip()
    with api(hub) as client:
        assert client.post("/v1/auth", headers={"x-api-key": key}).status_code == 200
    screenshot(page, "settings-new-key")
    page.goto(f"{hub.url}/settings")
    expect(page.locator("#new-key")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Revoke key {key[:8]}").click()
    expect(page.locator(f'tr[data-prefix="{key[:8]}"]')).to_contain_text("revoked")
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        assert client.post("/v1/auth", headers={"x-api-key": key}).status_code == 401
    page.context.close()


def test_another_users_model_is_neither_listed_nor_reachable(
    browser: Browser, hub: RunningServer
) -> None:
    with api(hub, "bob") as bob:
        body = {"meta": {"name": "bobs-private-run"}, "config": {"epochs": 3}}
        private = bob.post("/v1/models", json=body).json()["data"]["id"]
    page = signed_in_page(browser, hub)
    expect(page.locator("#models")).not_to_contain_text("bobs-private-run")
    page.get_by_label("Show").select_option("public")
    expect(page).to_have_url(re.compile(r"/models\?scope=public"))
    expect(page.locator("#models")).not_to_contain_text("bobs-private-run")
    answer = page.goto(f"{hub.url}/models/{private}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot(page, "not-found")
    page.context.close()
