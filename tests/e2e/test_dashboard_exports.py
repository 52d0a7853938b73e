"""The model page's Export and Preview panels in chromium, with a real worker (docs/dashboard.md).

A server from the test venv and a `trainhub worker` from the export venv share one data directory
(tests/exports/support.py). alice asks for an ONNX export with the panel's form and watches it go
from queued to done without a reload, then downloads the file and checks its sha256; she drops a
noise image on the Preview panel and the page draws one labelled box per detection over it,
beside the JSON the API answers for the same image. Without JavaScript, both forms still answer.
When the worker stops, the page says so, live, and a preview explains the 503.
"""

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, FilePayload, Page, expect

from tests.e2e.test_dashboard import browser, screenshot, signed_in_page  # noqa: F401  (fixture)
from tests.exports.support import (
    EXPORT_TIMEOUT_S,
    Hub,
    create_trained_model,
    run_models,
    running_hub,
)
from tests.exports.test_predictions import noise_png
from tests.integration.test_predictions import png

# serial: the page must follow the worker's export live, within a timeout, while chromium, the
# server and the worker share the machine's two cores; a parallel training would starve them.
pytestmark = [pytest.mark.e2e, pytest.mark.serial]

MAX_IMAGE_BYTES = 200_000  # small limits, so that the tests of the limits send small files
MAX_PIXELS = 100_000
PREDICT_TIMEOUT_MS = 120_000  # the first prediction loads the model in the worker
FIELDS = {"conf": "0.4", "iou": "0.9"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    limits = {
        "TRAINHUB_MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES),
        "TRAINHUB_MAX_PREDICT_PIXELS": str(MAX_PIXELS),
    }
    with running_hub(tmp_path_factory.mktemp("panels"), env=limits) as running:
        yield running


@pytest.fixture(scope="module")
def model_id(hub: Hub, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A two-class detector with a random head (many boxes of all sizes), as final weights."""
    scratch = tmp_path_factory.mktemp("weights")
    path = scratch / "shapes.pt"
    run_models("weights", scratch, path=str(path), task="detect", imgsz=64, random_head=True)
    with hub.client() as alice:
        return create_trained_model(alice, path)


def watch_csp(page: Page) -> list[str]:
    """Collect the Content Security Policy violations the page reports on its console."""
    violations: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", seen)
    return violations


def open_model(page: Page, hub: Hub, model_id: str) -> None:
    page.goto(f"{hub.url}/models/{model_id}")
    page.wait_for_load_state()  # deploy.js and live.js (deferred) are bound
    page.evaluate("window.__notReloaded = true")


def record_statuses(page: Page) -> None:
    """Note each status the ONNX row shows, as the live updates replace the history."""
    page.evaluate(
        """() => {
          window.__seen = [];
          const note = () => {
            const row = document.querySelector('#exports tr[data-format="onnx"]');
            if (row && window.__seen[window.__seen.length - 1] !== row.dataset.status) {
              window.__seen.push(row.dataset.status);
            }
          };
          note();
          new MutationObserver(note).observe(document.getElementById("exports"),
            { subtree: true, childList: true, attributes: true });
        }"""
    )


def test_an_onnx_export_is_requested_from_the_page_and_followed_live_to_its_download(
    browser: Browser,  # noqa: F811  (the fixture imported above)
    hub: Hub,
    model_id: str,
) -> None:
    page = signed_in_page(browser, hub.server)
    violations = watch_csp(page)
    open_model(page, hub, model_id)
    panel = page.locator("#exports")
    expect(panel.get_by_text("No exports of the current weights yet.")).to_be_visible()
    record_statuses(page)
    panel.get_by_label("Format").select_option("onnx")
    panel.get_by_role("button", name="Export").click()
    row = panel.locator('tr[data-format="onnx"]')
    expect(row).to_be_visible()
    expect(row).to_have_attribute("data-status", "done", timeout=EXPORT_TIMEOUT_S * 1000)
    seen = page.evaluate("window.__seen")
    assert seen[0] in ("queued", "running") and seen[-1] == "done", seen
    assert seen == [s for s in ("queued", "running", "done") if s in seen], seen
    assert page.evaluate("window.__notReloaded") is True
    screenshot(page, "model-export-done")

    link = row.get_by_role("link")
    with page.expect_download() as info:
        link.click()
    data = Path(info.value.path()).read_bytes()
    with hub.client() as alice:
        record = alice.get(f"/v1/models/{model_id}/exports").json()["data"][0]
    assert record["status"] == "done" and record["format"] == "onnx"
    assert hashlib.sha256(data).hexdigest() == record["sha256"] == link.get_attribute("data-sha256")
    assert len(data) == record["size_bytes"]
    expect(row.locator("code.hash")).to_have_text(record["sha256"])
    expect(link).to_have_text(record["fileName"])
    assert not violations, violations
    page.context.close()


def drop_file(page: Page, selector: str, name: str, data: bytes, mime: str) -> None:
    """Drop a file on an element, as a user dragging it from their desktop would."""
    page.evaluate(
        """([selector, name, b64, mime]) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const transfer = new DataTransfer();
          transfer.items.add(new File([bytes], name, { type: mime }));
          const target = document.querySelector(selector);
          for (const type of ["dragenter", "dragover", "drop"]) {
            target.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true,
              cancelable: true }));
          }
        }""",
        [selector, name, base64.b64encode(data).decode(), mime],
    )


def without_timings(record: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key != "speed_ms"}


def test_a_dropped_image_gets_its_boxes_drawn_and_the_json_the_api_answers(
    browser: Browser,  # noqa: F811
    hub: Hub,
    model_id: str,
) -> None:
    image = noise_png(96, 64, seed=1)
    with hub.client() as alice:
        answer = alice.post(
            f"/v1/predict/{model_id}", files={"image": ("noise.png", image)}, data=FIELDS
        )
    assert answer.status_code == 200, answer.text
    expected = answer.json()["data"]
    assert expected["results"], "the random head answers boxes on noise"

    page = signed_in_page(browser, hub.server)
    violations = watch_csp(page)
    open_model(page, hub, model_id)
    panel = page.locator("#preview")
    panel.get_by_label("Confidence").fill(FIELDS["conf"])
    panel.get_by_label("IoU").fill(FIELDS["iou"])
    drop_file(page, "#preview-drop", "noise.png", image, "image/png")
    expect(panel.get_by_role("img")).to_be_visible()
    panel.get_by_role("button", name="Predict").click()
    shown = panel.locator("#preview-json")
    expect(shown).not_to_be_empty(timeout=PREDICT_TIMEOUT_MS)
    record = json.loads(shown.inner_text())
    assert without_timings(record) == without_timings(expected)

    boxes = panel.locator("#preview-overlay .preview-box")
    expect(boxes).to_have_count(len(expected["results"]))
    labels = sorted(boxes.locator(".preview-label").all_inner_texts())
    assert labels == sorted(f"{r['name']} {r['confidence']:.2f}" for r in expected["results"])
    shown_image = panel.get_by_role("img").bounding_box()
    assert shown_image is not None
    scale = shown_image["width"] / expected["width"]
    for index, result in enumerate(record["results"][:20]):
        drawn = boxes.nth(index).bounding_box()
        assert drawn is not None
        box = result["box"]
        assert abs(drawn["x"] - shown_image["x"] - box["x1"] * scale) < 1.5, (index, drawn)
        assert abs(drawn["y"] - shown_image["y"] - box["y1"] * scale) < 1.5, (index, drawn)
        assert abs(drawn["width"] - (box["x2"] - box["x1"]) * scale) < 1.5, (index, drawn)
    expect(panel.locator("#preview-summary")).to_contain_text(f"{len(expected['results'])} result")
    screenshot(page, "model-preview")

    # errors say what went wrong: not an image, too large for this server's limits
    panel.get_by_label("Image").set_input_files(
        files=FilePayload(name="notes.png", mimeType="image/png", buffer=b"hello, world" * 10)
    )
    panel.get_by_role("button", name="Predict").click()
    expect(panel.locator("#preview-error")).to_contain_text("not an image")
    panel.get_by_label("Image").set_input_files(  # 360 KB of noise: refused before it is sent
        files=FilePayload(name="big.png", mimeType="image/png", buffer=noise_png(400, 300, 2))
    )
    panel.get_by_role("button", name="Predict").click()
    expect(panel.locator("#preview-error")).to_contain_text("max_image_bytes")
    panel.get_by_label("Image").set_input_files(  # a small file of too many pixels
        files=FilePayload(name="wide.png", mimeType="image/png", buffer=png(500, 250))
    )
    panel.get_by_role("button", name="Predict").click()
    expect(panel.locator("#preview-error")).to_contain_text("max_predict_pixels")
    assert not violations, violations
    page.context.close()


def test_without_javascript_the_export_form_posts_and_the_preview_answers_a_page(
    browser: Browser,  # noqa: F811
    hub: Hub,
    model_id: str,
) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{hub.url}/login")
    page.get_by_label("API key").fill(hub.server.keys["alice"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Models", exact=True)).to_be_visible()
    page.goto(f"{hub.url}/models/{model_id}")
    panel = page.locator("#exports")
    panel.get_by_label("Format").select_option("onnx")
    panel.get_by_role("button", name="Export").click()
    expect(page).to_have_url(f"{hub.url}/models/{model_id}?notice=export-queued#exports")
    expect(
        page.get_by_text("Export requested: its state shows in the Export panel.")
    ).to_be_visible()
    expect(panel.locator('tr[data-format="onnx"]')).to_have_count(1)  # the same export as before

    preview = page.locator("#preview")
    preview.get_by_label("Image").set_input_files(
        files=FilePayload(name="noise.png", mimeType="image/png", buffer=noise_png(96, 64, seed=1))
    )
    preview.get_by_label("Confidence").fill(FIELDS["conf"])
    preview.get_by_label("IoU").fill(FIELDS["iou"])
    preview.get_by_role("button", name="Predict").click()
    expect(page.get_by_role("heading", name="Preview")).to_be_visible(timeout=PREDICT_TIMEOUT_MS)
    rows = page.locator("table.list tbody tr")
    expect(rows.first).to_be_visible()
    count = rows.count()
    expect(
        page.get_by_text(f"{count} result{'' if count == 1 else 's'} on a 96x64 image")
    ).to_be_visible()
    context.close()


def test_when_the_worker_stops_the_page_says_so_and_a_preview_explains_the_503(
    browser: Browser,  # noqa: F811
    hub: Hub,
    model_id: str,
) -> None:
    page = signed_in_page(browser, hub.server)
    open_model(page, hub, model_id)
    expect(page.get_by_test_id("no-workers")).to_have_count(0)
    for worker in hub.workers:
        worker.stop()
    notice = page.get_by_test_id("no-workers")
    expect(notice).to_be_visible()  # the live stream saw the workers go
    assert page.evaluate("window.__notReloaded") is True
    panel = page.locator("#preview")
    panel.get_by_label("Image").set_input_files(
        files=FilePayload(name="noise.png", mimeType="image/png", buffer=noise_png(64, 64, 4))
    )
    panel.get_by_role("button", name="Predict").click()
    error = panel.locator("#preview-error")
    expect(error).to_contain_text("no worker is running")
    expect(error).to_contain_text("trainhub worker")
    with httpx.Client(base_url=hub.url, timeout=10) as client:
        health = client.get("/healthz").json()
    assert health["data"]["queue"]["workers"] == 0
    page.context.close()
