"""The model page's Export and Preview panels in-process: forms, history, live states, errors.

No worker process runs here: where a test needs an export that ran, it plays the worker's part
through the database functions the worker calls (tests/integration/test_exports.py). The real
worker, in chromium: tests/e2e/test_dashboard_exports.py.
"""

import hashlib
import re
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import Users, create_model, create_users, error, ok
from tests.integration.test_exports import WORKER, run_as_worker, trained_model
from tests.integration.test_predictions import png
from tests.integration.test_web import HTML, csrf_of, page_token, sign_in
from tests.integration.test_web_data import events
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.db import exports as export_queries
from trainhub.server.state import hub_state
from trainhub.server.web import live

JSON = {"accept": "application/json"}
_HISTORY_ROW = re.compile(r'<tr data-export="(\w+)" data-format="(\w+)" data-status="(\w+)">')
_VERSION = re.compile(r'<div id="export-history" data-version="([^"]*)">')


@pytest.fixture
def alice_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.alice.key) as client:
        yield client


@pytest.fixture
def bob_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.bob.key) as client:
        yield client


@pytest.fixture
def short_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "STREAM_LIFETIME_S", 0.35)
    monkeypatch.setattr(live, "POLL_INTERVAL_S", 0.1)


def history(client: TestClient, model_id: str) -> list[tuple[str, str, str]]:
    """Return the (id, format, status) rows of the Export panel's history."""
    answer = client.get(f"/models/{model_id}/exports")
    assert answer.status_code == 200, answer.text
    return _HISTORY_ROW.findall(answer.text)


def script_export(client: TestClient, model_id: str, fmt: str, token: str | None):
    headers = {**JSON, **({"x-csrf-token": token} if token else {})}
    return client.post(f"/models/{model_id}/exports", data={"format": fmt}, headers=headers)


def preview(client: TestClient, model_id: str, image: bytes, token: str | None, **fields: str):
    headers = {**JSON, **({"x-csrf-token": token} if token else {})}
    files = {"image": ("image.png", image, "image/png")}
    return client.post(f"/models/{model_id}/preview", files=files, data=fields, headers=headers)


def fail_as_worker(app: FastAPI, export_id: str, reason: str) -> None:
    """Do what a worker does when an export fails: claim it, then record why."""
    db = hub_state(app).db
    with db.write() as session:
        assert export_queries.claim(session, export_id, WORKER) is not None
    with db.write() as session:
        assert export_queries.fail(session, export_id, WORKER, reason)


# --- Export panel ---------------------------------------------------------------------------


def test_the_owner_queues_an_export_with_a_plain_form_and_sees_it_in_the_history(
    alice, alice_web, tmp_path
) -> None:
    model_id = trained_model(alice, tmp_path)
    page = alice_web.get(f"/models/{model_id}").text
    assert 'id="export-form"' in page and '<option value="onnx" selected>' in page
    assert '<option value="openvino">OpenVINO (openvino)</option>' in page
    assert "No exports of the current weights yet." in page
    assert 'id="preview-form"' in page
    answer = alice_web.post(
        f"/models/{model_id}/exports",
        data={"format": "onnx", "csrf_token": csrf_of(page)},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/models/{model_id}?notice=export-queued#exports"
    page = alice_web.get(answer.headers["location"]).text
    assert "Export requested: its state shows in the Export panel." in page
    assert "No worker is running" in page  # it waits for one, and the page says so
    listed = ok(alice.get(f"/v1/models/{model_id}/exports"))
    assert _HISTORY_ROW.findall(page) == [(listed[0]["id"], "onnx", "queued")]


def test_a_script_gets_the_export_record_and_its_errors_as_json(alice, alice_web, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    token = page_token(alice_web)
    record = ok(script_export(alice_web, model_id, "torchscript", token))
    assert (record["format"], record["status"], record["modelId"]) == (
        "torchscript",
        "queued",
        model_id,
    )
    assert ok(script_export(alice_web, model_id, "torchscript", token))["id"] == record["id"]
    message = error(script_export(alice_web, model_id, "tensorflow2000", token), 422)
    assert "unknown export format" in message and "onnx" in message
    assert error(script_export(alice_web, model_id, "onnx", None), 403)
    assert history(alice_web, model_id) == [(record["id"], "torchscript", "queued")]


def test_a_model_without_final_weights_offers_no_export_and_refuses_one(alice, alice_web) -> None:
    model_id = create_model(alice)
    page = alice_web.get(f"/models/{model_id}").text
    assert 'id="export-form"' not in page and 'id="preview-form"' not in page
    assert "this model has none yet" in page
    token = csrf_of(page)
    assert "no final weights" in error(script_export(alice_web, model_id, "onnx", token), 409)
    assert "no final weights" in error(preview(alice_web, model_id, png(8, 8), token), 409)
    plain = alice_web.post(
        f"/models/{model_id}/exports", data={"format": "onnx", "csrf_token": token}
    )
    assert plain.status_code == 409 and plain.headers["content-type"].startswith("text/html")
    assert "no final weights" in plain.text


def test_readers_see_the_history_but_only_the_owner_exports(
    alice, alice_web, bob_web, tmp_path
) -> None:
    model_id = trained_model(alice, tmp_path)
    queued = ok(script_export(alice_web, model_id, "onnx", page_token(alice_web)))
    token = page_token(bob_web)
    # private: bob cannot tell the model from a missing one
    assert error(bob_web.get(f"/models/{model_id}/exports", headers=JSON), 404)
    assert error(script_export(bob_web, model_id, "onnx", token), 404)
    assert error(preview(bob_web, model_id, png(8, 8), token), 404)
    ok(alice.patch(f"/v1/models/{model_id}", json={"public": True}))
    page = bob_web.get(f"/models/{model_id}").text
    assert 'id="exports"' in page and 'id="export-form"' not in page
    assert _HISTORY_ROW.findall(page) == [(queued["id"], "onnx", "queued")]
    assert error(script_export(bob_web, model_id, "openvino", token), 403)
    # a public model may be previewed by any user: the request passes every check but the worker
    assert "no worker is running" in error(preview(bob_web, model_id, png(8, 8), token), 503)
    assert [e["format"] for e in ok(alice.get(f"/v1/models/{model_id}/exports"))] == ["onnx"]


def test_a_done_export_shows_size_sha256_and_a_working_link_and_a_failed_one_its_reason(
    app, alice, alice_web, anon, tmp_path
) -> None:
    model_id = trained_model(alice, tmp_path)
    content = b"an onnx graph " * 100
    sha256 = hashlib.sha256(content).hexdigest()
    onnx = ok(alice.post(f"/v1/models/{model_id}/export", json={"format": "onnx"}))
    run_as_worker(app, onnx["id"], content)
    failed = ok(alice.post(f"/v1/models/{model_id}/export", json={"format": "tflite"}))
    fail_as_worker(app, failed["id"], "tflite needs the package tensorflow; pip install it")
    html = alice_web.get(f"/models/{model_id}/exports").text
    assert sorted(_HISTORY_ROW.findall(html)) == sorted(
        [(onnx["id"], "onnx", "done"), (failed["id"], "tflite", "failed")]
    )
    assert "1.4 KB" in html and f'<code class="hash" title="{sha256}">' in html
    link = re.search(
        rf'href="http://testserver(/files/[^"]+)" download data-sha256="{sha256}"', html
    )
    assert link, html
    assert anon.get(link.group(1)).content == content
    assert "Why it failed" in html and "tflite needs the package tensorflow" in html
    assert "<html" not in html  # the history alone, for the page's script to put in place


def test_the_live_stream_sends_the_exports_states_as_the_history_shows_them(
    app, alice, alice_web, tmp_path, short_streams
) -> None:
    model_id = trained_model(alice, tmp_path)
    queued = ok(script_export(alice_web, model_id, "onnx", page_token(alice_web)))
    stream = alice_web.get(f"/models/{model_id}/events", headers={"accept": "text/event-stream"})
    sent = dict(events(stream.text))
    assert sent["exports"]["exports"] == [
        {"id": queued["id"], "format": "onnx", "status": "queued"}
    ]
    assert sent["exports"]["workersAlive"] is False
    page = alice_web.get(f"/models/{model_id}").text
    assert _VERSION.findall(page) == [sent["exports"]["version"]]

    run_as_worker(app, queued["id"], b"graph")
    stream = alice_web.get(f"/models/{model_id}/events", headers={"accept": "text/event-stream"})
    done = dict(events(stream.text))["exports"]
    assert done["exports"][0]["status"] == "done"
    assert done["version"] != sent["exports"]["version"]
    assert _VERSION.findall(alice_web.get(f"/models/{model_id}/exports").text) == [done["version"]]


# --- Preview panel --------------------------------------------------------------------------


def test_preview_errors_are_clear_json_for_the_page_script(alice, alice_web, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    token = page_token(alice_web)
    assert error(preview(alice_web, model_id, png(64, 48), None), 403)
    assert "not an image" in error(preview(alice_web, model_id, b"hello, world" * 10, token), 422)
    answer = preview(alice_web, model_id, png(64, 48), token, conf="0.5", iou="0.6", imgsz="64")
    message = error(answer, 503)
    assert "no worker is running" in message and "trainhub worker" in message
    assert int(answer.headers["Retry-After"]) >= 1
    assert "confidence must be above 0" in error(
        preview(alice_web, model_id, png(8, 8), token, conf="0"), 422
    )
    no_image = alice_web.post(
        f"/models/{model_id}/preview",
        data={"conf": "0.5"},
        files={"other": ("x", b"x")},
        headers={**JSON, "x-csrf-token": token},
    )
    assert "unexpected file part 'other'" in error(no_image, 400)


def test_the_token_may_come_as_a_form_field_and_a_plain_post_gets_an_error_page(
    alice, alice_web, tmp_path
) -> None:
    model_id = trained_model(alice, tmp_path)
    token = page_token(alice_web)
    plain = alice_web.post(
        f"/models/{model_id}/preview",
        files={"image": ("image.png", png(16, 16), "image/png")},
        data={"csrf_token": token},
        headers=HTML,
    )
    assert plain.status_code == 503 and plain.headers["content-type"].startswith("text/html")
    assert "no worker is running" in plain.text
    wrong = alice_web.post(
        f"/models/{model_id}/preview",
        files={"image": ("image.png", png(16, 16), "image/png")},
        data={"csrf_token": "0" * 64},
        headers=JSON,
    )
    assert error(wrong, 403)


def test_an_image_over_the_limits_is_refused_with_the_setting_to_change(
    tmp_path, database_url
) -> None:
    settings = make_settings(
        tmp_path, database_url, max_image_bytes=4096, max_predict_pixels=10_000
    )
    app = create_app(settings)
    users = create_users(hub_state(app).db)
    with (
        TestClient(app, headers={"x-api-key": users.alice.key}) as alice,
        sign_in(app, users.alice.key) as alice_web,
    ):
        model_id = trained_model(alice, tmp_path)
        token = page_token(alice_web)
        big = png(64, 64) + b"\0" * 5000  # trailing bytes: still a PNG by its header
        assert "max_image_bytes" in error(preview(alice_web, model_id, big, token), 422)
        huge = png(200, 200)  # 40,000 pixels
        assert "max_predict_pixels" in error(preview(alice_web, model_id, huge, token), 413)
    hub_state(app).db.dispose()
