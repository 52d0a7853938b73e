"""The compare page in a real browser: chosen from the models list, it draws one line per model.

Two models with metrics are picked with their boxes in the models list; "Compare selected" opens
/compare, whose overlay chart must draw each model's line in that model's colour. The canvas is
read back pixel by pixel, so an empty chart (no series, or series with no points) fails.
"""

import json
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.test_dashboard import SCREENSHOTS, browser, signed_in_page  # noqa: F401
from tests.servers import RunningServer, start_server

pytestmark = pytest.mark.e2e

# the first two colours of charts.js's PALETTE, as RGB
SERIES_COLOURS = [(0x3B, 0x82, 0xF6), (0xEF, 0x44, 0x44)]
COUNT_PIXELS = """(colours) => {
  const canvas = document.querySelector('#compare-chart canvas');
  const ctx = canvas.getContext('2d');
  const {data} = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const counts = colours.map(() => 0);
  for (let i = 0; i < data.length; i += 4) {
    colours.forEach(([r, g, b], k) => {
      if (Math.abs(data[i] - r) < 24 && Math.abs(data[i + 1] - g) < 24 &&
          Math.abs(data[i + 2] - b) < 24 && data[i + 3] > 200) counts[k] += 1;
    });
  }
  return counts;
}"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with start_server(tmp_path_factory.mktemp("compare")) as server:
        yield server


def train(hub: RunningServer, name: str, slope: float) -> str:
    """Create a model of alice's with ten epochs of mAP50-95; return its id."""
    with httpx.Client(base_url=hub.url, headers={"x-api-key": hub.keys["alice"]}) as client:
        model_id = client.post("/v1/models", json={"meta": {"name": name}}).json()["data"]["id"]
        epochs = {
            str(e): json.dumps({"metrics/mAP50-95(B)": slope * e, "train/box_loss": 1 / (e + 1)})
            for e in range(10)
        }
        stored = client.post(f"/v1/models/{model_id}", json={"metrics": epochs})
        stored.raise_for_status()
    return str(model_id)


def test_compare_selected_draws_a_line_for_each_chosen_model(
    browser: Browser,  # noqa: F811
    hub: RunningServer,
) -> None:
    names = {train(hub, "slow-run", 0.02): "slow-run", train(hub, "fast-run", 0.08): "fast-run"}
    page = signed_in_page(browser, hub)
    page.goto(f"{hub.url}/models")
    for name in names.values():
        page.get_by_label(f"Compare {name}").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page.get_by_role("heading", name="Compare models")).to_be_visible()
    chart = page.locator("#compare-chart canvas")
    expect(chart).to_be_visible()
    for name in names.values():  # uPlot's legend names each series
        expect(page.locator("#compare-chart .u-legend")).to_contain_text(name)
    drawn = f"({COUNT_PIXELS})({json.dumps(SERIES_COLOURS)}).every((n) => n > 50)"
    page.wait_for_function(drawn)  # the chart loads its data after the page
    counts = page.evaluate(COUNT_PIXELS, SERIES_COLOURS)
    assert all(count > 50 for count in counts), counts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
    page.context.close()
