"""The dashboard shows what ultralytics 8.4 sends: console, system charts, environment, results.

docs/protocol/platform.md §9.4, §9.5 and §9.8, in-process; tests/e2e/test_platform_dashboard.py
drives the same page in a real browser.
"""

from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from tests.factories import Users, error
from tests.integration.test_web import HTML, csrf_of, sign_in
from tests.platform import (
    PlatformClient,
    complete_data,
    console_data,
    epoch_data,
)
from tests.testclient import TestClient
from trainhub.protocol.ids import platform_spelling
from trainhub.server.state import hub_state
from trainhub.server.web.modelpage import live_state


@pytest.fixture
def alice_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.alice.key) as client:
        yield client


@pytest.fixture
def bob_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.bob.key) as client:
        yield client


@pytest.fixture
def trainer(app, users) -> PlatformClient:
    return PlatformClient(app, platform_spelling(users.alice.key))


def test_the_model_page_shows_console_runs_environment_and_final_metrics(
    trainer, alice_web
) -> None:
    run = trainer.start()
    trainer.ok("console_output", console_data(1, "\x1b[34mStarting\x1b[0m training"), run.model_id)
    trainer.ok("epoch_end", epoch_data(0), run.model_id)
    trainer.ok("epoch_end", epoch_data(1, final=True, map5095=0.375), run.model_id)
    page = alice_web.get(f"/models/{run.model_id}")
    assert page.status_code == 200
    html = page.text
    assert 'id="console"' in html and f'data-src="/models/{run.model_id}/console.json"' in html
    assert 'data-testid="environment"' in html and "trainer-1" in html and "abc123def456" in html
    assert 'data-testid="final-metrics"' in html and "0.375" in html
    assert 'action="/models/' + run.model_id + '/stop"' in html
    assert "silent after" in html  # the run's agent has no heartbeat interval
    assert "ULTRALYTICS_PLATFORM_URL=http://testserver" in html
    assert "style=" not in html and "<script>" not in html  # the CSP allows nothing inline


def test_console_json_keeps_colours_and_console_txt_strips_them(trainer, alice_web) -> None:
    run = trainer.start()
    trainer.ok("console_output", console_data(7, "\x1b[1mbold\x1b[0m"), run.model_id)
    trainer.ok("console_output", console_data(3, "first"), run.model_id)
    data = alice_web.get(f"/models/{run.model_id}/console.json").json()
    assert [c[0] for c in data["chunks"]] == [3, 7]
    assert "\x1b[1mbold" in data["chunks"][1][1]
    newer = alice_web.get(f"/models/{run.model_id}/console.json", params={"after": 3}).json()
    assert [c[0] for c in newer["chunks"]] == [7]
    text = alice_web.get(f"/models/{run.model_id}/console.txt").text
    assert text.endswith("first\n[2026-12-04 10:00:00] bold\n")


def test_system_metrics_are_a_chart_group_of_their_own(trainer, alice_web) -> None:
    run = trainer.start()
    trainer.ok("epoch_end", epoch_data(0), run.model_id)
    groups = alice_web.get(f"/models/{run.model_id}/chart.json").json()["groups"]
    assert "system/cpu" in groups["system"] and "system/gpu0_power" in groups["system"]
    assert "system/cpu" not in groups.get("other", [])


def test_results_json_holds_the_final_curves_and_confusion_matrix(trainer, alice_web) -> None:
    run = trainer.start()
    assert alice_web.get(f"/models/{run.model_id}/results.json").json() == {"plots": []}
    trainer.ok("training_complete", complete_data(run.run_id, classes=2), run.model_id)
    data = alice_web.get(f"/models/{run.model_id}/results.json").json()
    assert data["classNames"] == ["class0", "class1"]
    assert {p["type"] for p in data["plots"]} >= {"pr_curve", "f1_curve", "confusion_matrix"}


def test_the_live_snapshot_carries_the_console_and_the_run(trainer, app, users) -> None:
    run = trainer.start()
    trainer.ok("console_output", console_data(11, "line"), run.model_id)
    hub = hub_state(app)
    snapshot = live_state(hub.db, hub.settings, run.model_id, users.alice.id)
    assert snapshot[("console", run.model_id)] == {"chunks": 1, "newest": 11}
    state = snapshot[("run", run.model_id)]
    assert state["state"] == "running" and state["liveness"] == "online"
    assert state["stopRequested"] is False and state["results"] is False


def test_stop_training_asks_the_run_to_stop_and_needs_csrf(trainer, alice_web, app) -> None:
    run = trainer.start()
    page = alice_web.get(f"/models/{run.model_id}").text
    refused = alice_web.post(f"/models/{run.model_id}/stop", follow_redirects=False)
    assert refused.status_code == 403
    answer = alice_web.post(
        f"/models/{run.model_id}/stop",
        data={"csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/models/{run.model_id}?notice=stop-requested"
    assert trainer.ok("epoch_end", epoch_data(0), run.model_id)["cancelled"] is True
    shown = alice_web.get(answer.headers["location"]).text
    assert "Stop requested" in shown and "A stop was requested" in shown


def test_another_user_sees_none_of_a_private_runs_panels(trainer, bob_web) -> None:
    run = trainer.start()
    trainer.ok("console_output", console_data(1, "secret"), run.model_id)
    for path in ("console.json", "console.txt", "results.json"):
        answer = bob_web.get(f"/models/{run.model_id}/{path}", headers={"accept": "*/*"})
        error(answer, 404)
    page = bob_web.get(f"/models/{run.model_id}", headers=HTML)
    assert page.status_code == 404 and "secret" not in page.text
