"""Weights from ultralytics 8.4: upload URL, keyless PUT, staging, promotion, HUB v1 download.

docs/protocol/platform.md §4.5, §4.6 and §9.7.
"""

import hashlib
import time
from urllib.parse import urlsplit

import pytest

from tests.factories import error, local_path, ok, stored_blobs
from tests.platform import UPLOAD_REQUEST, PlatformClient, complete_data, epoch_data
from tests.testclient import TestClient
from trainhub.protocol.ids import platform_spelling
from trainhub.server.signing import create_upload_token
from trainhub.server.state import hub_state

WEIGHTS = b"PK\x03\x04 pretend this is a torch zip " * 4096


@pytest.fixture
def trainer(app, users) -> PlatformClient:
    return PlatformClient(app, platform_spelling(users.alice.key))


@pytest.fixture
def keyless(app) -> TestClient:
    """The PUT of `requests`: no key, the URL is the credential."""
    return TestClient(app)


def ask(trainer: PlatformClient, model_id: str, run_id: int | None, filename="best.pt") -> dict:
    response = trainer.http.post(
        UPLOAD_REQUEST, json={"filename": filename, "modelId": model_id, "runId": run_id}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["uploadUrl"].startswith("http://testserver/api/uploads/")
    assert answer["modelId"] == model_id
    return answer


def put(keyless: TestClient, url: str, data: bytes = WEIGHTS, **headers: str):
    return keyless.put(
        local_path(url),
        content=data,
        headers={"content-type": "application/octet-stream", **headers},
        follow_redirects=False,
    )


def weights_of(client, model_id: str) -> bytes | None:
    record = ok(client.get(f"/v1/models/{model_id}"))
    if not record["has_best_weights"]:
        return None
    response = TestClient(client.app).get(local_path(record["weights"]))
    assert response.status_code == 200
    return response.content


def test_a_put_file_becomes_the_models_weights_once_checkpoint_saved_promotes_it(
    trainer, keyless, alice
) -> None:
    run = trainer.start()
    trainer.ok("epoch_end", epoch_data(0), run.model_id)
    answer = ask(trainer, run.model_id, run.run_id)
    stored = put(keyless, answer["uploadUrl"])
    assert stored.status_code == 200, stored.text
    assert stored.json()["sha256"] == hashlib.sha256(WEIGHTS).hexdigest()
    assert weights_of(alice, run.model_id) is None  # staged, not yet the model's
    saved = {
        "modelPath": answer["gcsPath"],
        "runId": run.run_id,
        "uploadPath": answer["uploadPath"],
    }
    assert trainer.ok("checkpoint_saved", saved, run.model_id) == {
        "received": True,
        "event": "checkpoint_saved",
    }
    assert weights_of(alice, run.model_id) == WEIGHTS
    assert ok(alice.get(f"/v1/models/{run.model_id}"))["status"] == "training"
    trainer.ok(
        "training_complete", complete_data(run.run_id, model_path=answer["gcsPath"]), run.model_id
    )
    model = ok(alice.get(f"/v1/models/{run.model_id}"))
    assert model["status"] == "trained"
    assert weights_of(alice, run.model_id) == WEIGHTS


def test_training_complete_promotes_the_file_when_no_checkpoint_saved_came(
    trainer, keyless, alice
) -> None:
    run = trainer.start()
    answer = ask(trainer, run.model_id, run.run_id)
    assert put(keyless, answer["uploadUrl"]).status_code == 200
    trainer.ok(
        "training_complete", complete_data(run.run_id, model_path=answer["gcsPath"]), run.model_id
    )
    assert weights_of(alice, run.model_id) == WEIGHTS


def test_a_put_may_be_repeated_and_the_last_bytes_count(trainer, keyless, alice, app) -> None:
    run = trainer.start()
    answer = ask(trainer, run.model_id, run.run_id)
    assert put(keyless, answer["uploadUrl"], b"first attempt").status_code == 200
    assert put(keyless, answer["uploadUrl"]).status_code == 200
    saved = {"modelPath": answer["gcsPath"], "runId": run.run_id}
    trainer.ok("checkpoint_saved", saved, run.model_id)
    assert weights_of(alice, run.model_id) == WEIGHTS
    assert put(keyless, answer["uploadUrl"]).status_code == 200  # a retry after a lost answer
    error(put(keyless, answer["uploadUrl"], b"other bytes"), 409)
    assert (
        len(stored_blobs(hub_state(app).settings.data_dir)) == 1
    )  # the first attempt's bytes are gone


def test_a_newer_promotion_replaces_the_weights_and_an_older_one_is_ignored(
    trainer, keyless, alice, app
) -> None:
    run = trainer.start()
    first, second = ask(trainer, run.model_id, run.run_id), ask(trainer, run.model_id, run.run_id)
    assert put(keyless, first["uploadUrl"], b"older").status_code == 200
    assert put(keyless, second["uploadUrl"]).status_code == 200
    trainer.ok("checkpoint_saved", {"modelPath": second["gcsPath"]}, run.model_id)
    late = trainer.ok("checkpoint_saved", {"modelPath": first["gcsPath"]}, run.model_id)
    assert late["ignored"] is True
    assert weights_of(alice, run.model_id) == WEIGHTS
    assert len(stored_blobs(hub_state(app).settings.data_dir)) == 1


def test_a_put_with_the_wrong_length_stores_nothing(trainer, keyless, alice, app) -> None:
    run = trainer.start()
    answer = ask(trainer, run.model_id, run.run_id)
    error(put(keyless, answer["uploadUrl"], b"short", **{"content-length": "99"}), 400)
    assert stored_blobs(hub_state(app).settings.data_dir) == []
    error(put(keyless, answer["uploadUrl"], b""), 422)


def test_a_put_over_the_size_limit_is_413_before_a_byte_is_read(trainer, keyless, app) -> None:
    hub_state(app).settings.max_upload_bytes = 1000
    run = trainer.start()
    answer = ask(trainer, run.model_id, run.run_id)
    error(put(keyless, answer["uploadUrl"], b"x" * 1001), 413)


def test_an_upload_url_used_after_its_window_is_403(trainer, keyless, app) -> None:
    run = trainer.start()
    answer = ask(trainer, run.model_id, run.run_id)
    path = urlsplit(answer["uploadUrl"]).path
    upload_id = path.split("/")[3]
    expired = create_upload_token(hub_state(app).links.secret, upload_id, int(time.time()) - 1)
    message = error(put(keyless, f"/api/uploads/{upload_id}/{expired}"), 403)
    assert "expired" in message
    error(put(keyless, f"/api/uploads/{upload_id}/1.forged"), 404)
    other = ask(trainer, run.model_id, run.run_id)["uploadUrl"].split("/")[-1]
    error(put(keyless, f"/api/uploads/{upload_id}/{other}"), 404)  # another upload's token


def test_an_upload_url_is_answered_only_for_your_own_model(app, users, trainer) -> None:
    run = trainer.start()
    bob = PlatformClient(app, users.bob.key)
    response = bob.http.post(UPLOAD_REQUEST, json={"filename": "best.pt", "modelId": run.model_id})
    error(response, 404)
    for name in ("../best.pt", "best.pth", ""):
        response = trainer.http.post(
            UPLOAD_REQUEST, json={"filename": name, "modelId": run.model_id}
        )
        error(response, 422)


def test_checkpoint_saved_for_an_upload_without_bytes_is_refused(trainer) -> None:
    run = trainer.start()
    answer = ask(trainer, run.model_id, run.run_id)
    response = trainer.event(
        "checkpoint_saved", {"modelPath": answer["gcsPath"]}, modelId=run.model_id
    )
    error(response, 422)
    response = trainer.event(
        "checkpoint_saved", {"modelPath": "gs://bucket/x.pt"}, modelId=run.model_id
    )
    error(response, 422)


def test_a_deleted_model_takes_its_staged_files_with_it(trainer, keyless, alice, app) -> None:
    run = trainer.start()
    answer = ask(trainer, run.model_id, run.run_id)
    assert put(keyless, answer["uploadUrl"]).status_code == 200
    ok(alice.delete(f"/v1/models/{run.model_id}", params={"hard": "true"}))
    assert stored_blobs(hub_state(app).settings.data_dir) == []
    error(put(keyless, answer["uploadUrl"]), 404)
