"""A run reported the way ultralytics 8.4 reports it, watched and stopped in a real browser.

A trainer thread speaks the Platform protocol over HTTP to a real server with the bodies of
tests/platform.py (docs/protocol/platform.md §4): an epoch and a coloured console chunk a second,
each `epoch_end` answer read for `cancelled`. The page must show the console, the system charts
and the environment live, stop the run from its "Stop training" button, and then show the run
cancelled with its final curves and confusion matrix, without a reload and without breaking its
Content Security Policy. tests/compat/test_ultralytics_platform.py runs the real ultralytics.
"""

import os
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, expect

from tests.e2e.test_dashboard import browser, screenshot, signed_in_page  # noqa: F401  (fixture)
from tests.platform import (
    EVENTS,
    UPLOAD_REQUEST,
    complete_data,
    console_data,
    epoch_data,
    started_data,
)
from tests.servers import RunningServer, start_server

pytestmark = pytest.mark.e2e

MAX_EPOCHS = 120


class PlatformTrainer(threading.Thread):
    """ultralytics 8.4's callback in miniature: events a second until the hub says stop."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=10
        )
        self.model_id = ""
        self.run_id = 0
        self.created = threading.Event()
        self.watched = threading.Event()  # the page is open: train on
        self.stopped = threading.Event()
        self.cancelled_at: int | None = None
        self.error: BaseException | None = None

    def send(self, event: str, data: dict[str, Any], **identity: Any) -> dict[str, Any]:
        identity = identity or {"modelId": self.model_id}
        answer = self.http.post(EVENTS, json={"event": event, "data": data, **identity})
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def _finish(self, epoch: int) -> None:
        self.send("epoch_end", epoch_data(epoch + 1, final=True, map5095=0.3))
        body = {"filename": "best.pt", "modelId": self.model_id, "runId": self.run_id}
        upload = self.http.post(UPLOAD_REQUEST, json=body).json()
        put = httpx.put(upload["uploadUrl"], content=os.urandom(4096), timeout=10)
        put.raise_for_status()
        self.send("checkpoint_saved", {"modelPath": upload["gcsPath"], "runId": self.run_id})
        self.send("training_complete", complete_data(self.run_id, model_path=upload["gcsPath"]))

    def _train(self) -> None:
        started = self.send(
            "training_started", started_data(MAX_EPOCHS), project="alice/live", name="watched"
        )
        self.model_id, self.run_id = started["modelId"], started["runId"]
        self.created.set()
        self.watched.wait(30)
        for epoch in range(MAX_EPOCHS):
            if self.stopped.is_set():
                return
            chunk = console_data(
                1_700_000_000_000 + epoch, f"\x1b[34mEpoch {epoch + 1}\x1b[0m done"
            )
            self.send("console_output", chunk)
            if self.send("epoch_end", epoch_data(epoch)).get("cancelled"):
                self.cancelled_at = epoch
                self._finish(epoch)
                return
            self.stopped.wait(1.0)

    def run(self) -> None:
        try:
            self._train()
        except BaseException as exc:  # reported by the test through .error
            self.error = exc
            self.created.set()
        finally:
            self.http.close()


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("platform-dashboard")) as server:
        yield server


def test_a_platform_run_is_watched_live_stopped_and_its_results_charted(
    browser: Browser,  # noqa: F811  (the fixture imported above)
    hub: RunningServer,
) -> None:
    trainer = PlatformTrainer(hub.url, "ul_" + hub.keys["alice"][2:])
    trainer.start()
    page = signed_in_page(browser, hub)
    violations: list[str] = []

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or message.type == "error":
            violations.append(message.text)

    page.on("console", note)
    try:
        assert trainer.created.wait(15) and trainer.error is None, trainer.error
        page.goto(f"{hub.url}/models/{trainer.model_id}")
        expect(page.get_by_role("heading", name="watched")).to_be_visible()
        page.evaluate("window.__notReloaded = true")
        trainer.watched.set()

        console = page.get_by_test_id("console")
        expect(console).to_contain_text("Epoch 2 done")  # arrived after the page opened
        expect(console.locator("span.ansi-fg-34").first).to_have_text("Epoch 1")
        expect(page.locator("#charts figure[data-metric='system/cpu'] canvas")).to_be_visible()
        expect(page.locator("#charts .group h3", has_text="system")).to_be_visible()
        expect(page.get_by_test_id("environment")).to_contain_text("trainer-1")
        expect(page.get_by_test_id("environment")).to_contain_text("abc123def456")
        expect(page.locator("[data-field=run-state]")).to_have_text("online")
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "model-platform-training")

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Stop training").click()
        expect(page.get_by_text("Stop requested: the trainer stops")).to_be_visible()
        page.evaluate("window.__notReloaded = true")
        trainer.join(30)
        assert trainer.error is None, trainer.error
        assert trainer.cancelled_at is not None, "the trainer never heard the stop"

        expect(page.locator(".model-head [data-field=status]")).to_have_text("cancelled")
        expect(page.locator("[data-field=run-state]")).to_have_text("cancelled")
        results = page.locator("#results")
        expect(results.locator("figure[data-plot='pr_curve'] canvas").first).to_be_visible()
        expect(results.locator("figure[data-plot='f1_curve']")).to_be_visible()
        expect(results.locator("#confusion-matrix")).to_be_visible()
        expect(page.locator("#weights-changed")).to_be_visible()  # best.pt arrived
        expect(page.get_by_role("button", name="Stop training")).to_be_hidden()
        assert page.evaluate("window.__notReloaded") is True
        screenshot(page, "model-platform-cancelled")

        page.reload()
        final = page.get_by_test_id("final-metrics").filter(has_text="metrics/mAP50-95(B)")
        expect(final).to_contain_text("0.3")
        expect(page.get_by_role("button", name="Stop training")).to_have_count(0)
        text = page.request.get(f"{hub.url}/models/{trainer.model_id}/console.txt").text()
        assert "Epoch 1 done" in text and "\x1b" not in text
    finally:
        trainer.stopped.set()
        trainer.watched.set()
        trainer.join(20)
        page.context.close()
    assert not violations, violations
