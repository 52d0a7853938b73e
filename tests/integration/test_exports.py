"""Exports through the API, without a worker process (docs/protocol/hub-v1.md §5.12, §5.13, §5.22).

The server's side of the job queue is real here: jobs are recorded and queued. Where a test needs
a job that ran, it plays the worker's part through the same database functions the worker calls
(claim, finish, fail) and publishes a file through the app's storage, as the worker does; the
real worker runs in tests/exports/.
"""

import hashlib
import time
from datetime import timedelta

import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import (
    create_model,
    error,
    ok,
    stored_blobs,
    upload_weights,
    weights_file,
)
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.db import exports as export_queries
from trainhub.server.db.tables import ExportRow, utcnow
from trainhub.server.services.exports import take_back_abandoned
from trainhub.server.state import hub_state

WORKER = "W" * 20


def trained_model(client: TestClient, tmp_path, **doc) -> str:
    model_id = create_model(client, **doc)
    path, _ = weights_file(tmp_path / f"{model_id}.pt")
    ok(upload_weights(client, model_id, path, final=True))
    return model_id


def request_export(client: TestClient, model_id: str, fmt: str = "onnx"):
    return client.post(f"/v1/models/{model_id}/export", json={"format": fmt})


def poll(client: TestClient, model_id: str, fmt: str = "onnx"):
    return client.post("/get-export", json={"modelId": model_id, "format": fmt})


def run_as_worker(app: FastAPI, export_id: str, content: bytes) -> str:
    """Do what a worker does for a successful export: claim, publish a file, finish."""
    db, storage = hub_state(app).db, hub_state(app).storage
    with db.write() as session:
        job = export_queries.claim(session, export_id, WORKER)
    assert job is not None
    writer = storage.create_writer()
    writer.write(content)
    sha256 = writer.hexdigest()
    key = f"exports/{job.model_id}/{job.id}-{sha256}"
    writer.publish(key)
    with db.write() as session:
        assert export_queries.finish(
            session, export_id, WORKER, key=key, sha256=sha256, size=len(content)
        )
    return key


def test_an_export_is_queued_and_polled_until_a_worker_runs_it(app, alice, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    answer = request_export(alice, model_id)
    assert answer.status_code == 200  # exactly 200 (docs/protocol/hub-v1.md §5.12)
    record = ok(answer)
    assert (record["modelId"], record["format"], record["status"]) == (model_id, "onnx", "queued")
    assert "no worker is running" in record["message"] and "trainhub worker" in record["message"]
    assert record["url"] is None and record["attempts"] == 0

    polled = poll(alice, model_id)
    assert polled.status_code == 200
    assert polled.json()["success"] is True and polled.json()["data"]["id"] == record["id"]
    assert polled.json()["message"].startswith("ONNX export queued")
    # asking again answers the same job: no second export of the same weights
    assert ok(request_export(alice, model_id))["id"] == record["id"]
    assert ok(alice.get(f"/v1/exports/{record['id']}"))["status"] == "queued"
    assert [r["id"] for r in ok(alice.get(f"/v1/models/{model_id}/exports"))] == [record["id"]]
    health = ok(alice.get("/healthz"))
    assert health["queue"] == {"status": "ok", "depth": 1, "workers": 0}
    assert hub_state(app).queue.pending_exports() == {record["id"]}


def test_a_finished_export_is_ready_with_a_signed_link_to_its_file(
    app, alice, anon, tmp_path
) -> None:
    model_id = trained_model(alice, tmp_path)
    export_id = ok(request_export(alice, model_id))["id"]
    content = b"onnx bytes " * 100
    run_as_worker(app, export_id, content)

    answer = poll(alice, model_id)
    body = answer.json()
    assert answer.status_code == 200
    assert (body["success"], body["message"]) == (True, "Export ready!")
    record = body["data"]
    assert record["status"] == "done" and record["attempts"] == 1
    assert record["sha256"] == hashlib.sha256(content).hexdigest()
    assert record["size_bytes"] == len(content)
    assert record["fileName"] == f"{model_id}-{record['sha256'][:8]}-best.onnx"
    url = record["url"].removeprefix("http://testserver")
    assert url.endswith(f"/{model_id}/export-onnx/{record['fileName']}")
    download = anon.get(url)
    assert download.status_code == 200 and download.content == content
    assert download.headers["etag"] == f'"{record["sha256"]}"'
    # another format of the same model is its own job
    assert ok(request_export(alice, model_id, "torchscript"))["status"] == "queued"
    assert {r["format"] for r in ok(alice.get(f"/v1/models/{model_id}/exports"))} == {
        "onnx",
        "torchscript",
    }


def test_new_final_weights_reset_and_delete_drop_the_exports_and_their_files(
    app, alice, anon, tmp_path
) -> None:
    for ending in ("new weights", "reset", "clear", "delete"):
        model_id = trained_model(alice, tmp_path)
        export_id = ok(request_export(alice, model_id))["id"]
        key = run_as_worker(app, export_id, f"export of {ending}".encode())
        url = ok(poll(alice, model_id))["url"].removeprefix("http://testserver")
        assert (hub_state(app).settings.data_dir / "blobs" / key).exists()
        if ending == "new weights":
            path, _ = weights_file(tmp_path / "newer.pt")
            ok(upload_weights(alice, model_id, path, final=True))
        elif ending == "reset":
            ok(alice.post("/model-reset", json={"modelId": model_id}))
        elif ending == "clear":
            answer = ok(alice.post(f"/qa/model/{model_id}/clear_exports"))
            assert answer == {"id": model_id}
        else:
            ok(alice.delete(f"/v1/models/{model_id}", params={"hard": "True"}))
        assert not (hub_state(app).settings.data_dir / "blobs" / key).exists(), ending
        assert anon.get(url).status_code == 404, ending
        if ending != "delete":
            error(poll(alice, model_id), 404)
            assert ok(alice.get(f"/v1/models/{model_id}/exports")) == []
    assert not [p for p in stored_blobs(hub_state(app).settings.data_dir) if "exports" in p.parts]


def test_a_failed_export_says_why_and_can_be_requested_again(app, alice, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    export_id = ok(request_export(alice, model_id, "openvino"))["id"]
    with hub_state(app).db.write() as session:
        assert export_queries.claim(session, export_id, WORKER) is not None
        reason = "exporting to OpenVINO needs the Python package 'openvino'"
        assert export_queries.fail(session, export_id, WORKER, reason)
    answer = poll(alice, model_id, "openvino")
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is False and body["data"]["status"] == "failed"
    assert body["message"] == f"OpenVINO export failed: {reason}"
    assert body["data"]["error"] == reason
    again = ok(request_export(alice, model_id, "openvino"))
    assert (again["id"], again["status"], again["attempts"], again["error"]) == (
        export_id,
        "queued",
        0,
        None,
    )


def test_a_job_whose_worker_went_silent_is_queued_again_then_failed(app, alice, tmp_path) -> None:
    settings = hub_state(app).settings
    model_id = trained_model(alice, tmp_path)
    export_id = ok(request_export(alice, model_id))["id"]
    hub_state(app).queue.huey.flush()  # as if a worker had taken the message

    def claim_and_go_silent() -> None:
        with hub_state(app).db.write() as session:
            assert export_queries.claim(session, export_id, WORKER) is not None
            row = session.get(ExportRow, export_id)
            row.heartbeat_at = utcnow() - timedelta(seconds=settings.job_lease_s + 1)

    claim_and_go_silent()
    assert take_back_abandoned(hub_state(app).db, hub_state(app).queue, settings) == 1
    record = ok(poll(alice, model_id))
    assert (record["status"], record["attempts"]) == ("queued", 1)
    assert hub_state(app).queue.pending_exports() == {export_id}

    for _ in range(settings.job_max_attempts - 1):
        hub_state(app).queue.huey.flush()
        claim_and_go_silent()
        take_back_abandoned(hub_state(app).db, hub_state(app).queue, settings)
    answer = poll(alice, model_id).json()
    assert answer["data"]["status"] == "failed"
    assert (
        "stopped answering" in answer["message"] and "request the export again" in answer["message"]
    )
    assert hub_state(app).queue.pending_exports() == set()


def test_a_job_recorded_but_missing_from_the_queue_is_queued_again(app, alice, tmp_path) -> None:
    settings = hub_state(app).settings
    model_id = trained_model(alice, tmp_path)
    export_id = ok(request_export(alice, model_id))["id"]
    hub_state(app).queue.huey.flush()  # the queue lost it (the server died between the two writes)
    assert take_back_abandoned(hub_state(app).db, hub_state(app).queue, settings) == 0  # too young
    with hub_state(app).db.write() as session:
        row = session.get(ExportRow, export_id)
        row.queued_at = utcnow() - timedelta(seconds=settings.job_lease_s + 1)
    assert take_back_abandoned(hub_state(app).db, hub_state(app).queue, settings) == 1
    assert hub_state(app).queue.pending_exports() == {export_id}


@pytest.mark.parametrize("fmt", ["", "onnx2", "onnx;rm", "../../etc", "pt", "x" * 41])
def test_an_unknown_format_is_refused_with_the_list(alice, tmp_path, fmt) -> None:
    model_id = trained_model(alice, tmp_path)
    answer = request_export(alice, model_id, fmt)
    message = error(answer, 422)
    if 0 < len(fmt) <= 40:
        assert "torchscript, onnx, openvino" in message


def test_hub_app_formats_are_their_ultralytics_formats(alice, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    assert ok(request_export(alice, model_id, "ultralytics_tflite"))["format"] == "tflite"
    assert ok(poll(alice, model_id, "tflite"))["format"] == "tflite"


def test_a_model_without_final_weights_cannot_be_exported(alice, tmp_path) -> None:
    model_id = create_model(alice)
    path, _ = weights_file(tmp_path / "last.pt")
    ok(upload_weights(alice, model_id, path))  # a checkpoint is not final weights
    message = error(request_export(alice, model_id), 409)
    assert "no final weights" in message


def test_polling_an_export_never_requested_answers_404(alice, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path)
    assert "onnx export" in error(poll(alice, model_id), 404)
    error(poll(alice, model_id, "nonsense"), 422)
    error(alice.get("/v1/exports/" + "A" * 20), 404)
    error(alice.get("/v1/exports/" + "A" * 200), 404)
    error(alice.get("/v1/exports/%00" + "A" * 19), 404)  # PostgreSQL text cannot hold NUL


def test_other_users_cannot_export_or_see_alices_private_exports(
    alice, bob, anon, tmp_path
) -> None:
    model_id = trained_model(alice, tmp_path)
    export_id = ok(request_export(alice, model_id))["id"]
    error(request_export(bob, model_id), 404)
    error(poll(bob, model_id), 404)
    error(bob.get(f"/v1/exports/{export_id}"), 404)
    error(bob.get(f"/v1/models/{model_id}/exports"), 404)
    error(bob.post(f"/qa/model/{model_id}/clear_exports"), 404)
    error(anon.get(f"/v1/exports/{export_id}"), 404)
    error(request_export(anon, model_id), 401)
    error(anon.post("/get-export", json={"modelId": model_id, "format": "onnx"}), 401)
    assert ok(poll(alice, model_id))["status"] == "queued"


def test_a_public_model_is_read_only_for_others(alice, bob, tmp_path) -> None:
    model_id = trained_model(alice, tmp_path, public=True)
    export_id = ok(request_export(alice, model_id))["id"]
    assert "read-only" in error(request_export(bob, model_id, "torchscript"), 403)
    assert ok(poll(bob, model_id))["id"] == export_id
    assert ok(bob.get(f"/v1/exports/{export_id}"))["id"] == export_id
    error(bob.post(f"/qa/model/{model_id}/clear_exports"), 403)


def test_a_flood_of_export_requests_is_limited_per_user(tmp_path, database_url) -> None:
    settings = make_settings(tmp_path, database_url, max_queued_exports_per_user=2)
    app = create_app(settings)
    from tests.factories import create_users

    users = create_users(hub_state(app).db)
    with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
        first, second = trained_model(alice, tmp_path), trained_model(alice, tmp_path)
        ok(request_export(alice, first, "onnx"))
        ok(request_export(alice, second, "onnx"))
        refused = request_export(alice, first, "torchscript")
        message = error(refused, 429)
        assert "2 exports queued or running" in message
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert int(refused.headers["X-RateLimit-Reset"]) > time.time()
        # asking for a job that exists costs nothing
        ok(request_export(alice, first, "onnx"))
        assert len(ok(alice.get(f"/v1/models/{first}/exports"))) == 1
    with TestClient(app, headers={"x-api-key": users.bob.key}) as bob:
        ok(request_export(bob, trained_model(bob, tmp_path), "onnx"))  # a limit per user
    hub_state(app).db.dispose()
