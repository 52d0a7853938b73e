"""The Platform events of ultralytics 8.4 land on ordinary trainhub models.

docs/protocol/platform.md §9.1-§9.6 and §9.8: runs, epochs, the final validation, console,
system metrics, environment, cancel, resume, and both spellings of a key.
"""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from tests.factories import error, ok
from tests.platform import (
    EVENTS,
    PlatformClient,
    complete_data,
    console_data,
    epoch_data,
    started_data,
)
from trainhub.protocol.ids import platform_spelling
from trainhub.server.db.tables import AgentRow, ModelRow, ProjectRow, RunRow, utcnow
from trainhub.server.state import hub_state


@pytest.fixture
def trainer(app, users) -> PlatformClient:
    """alice's ultralytics 8.4, with her key spelled as 8.4 keeps it (`ul_` + 40 hex)."""
    return PlatformClient(app, platform_spelling(users.alice.key))


def record(client, model_id: str) -> dict:
    return ok(client.get(f"/v1/models/{model_id}"))


def series(client, model_id: str) -> dict[str, dict]:
    return {s["meta"]["name"]: s["data"] for s in ok(client.get(f"/v1/models/{model_id}/metrics"))}


def runs_of(client, model_id: str) -> list[dict]:
    return ok(client.get(f"/v1/models/{model_id}/runs"))


# ---------------------------------------------------------------- start: one model, two protocols


def test_a_started_run_is_an_ordinary_model_in_the_named_project(trainer, alice) -> None:
    run = trainer.start("alice/my-proj", "train")
    assert isinstance(run.run_id, int)
    assert run.answer["modelUrl"] == f"http://testserver/models/{run.model_id}"
    model = record(alice, run.model_id)
    assert model["status"] == "training"
    assert model["meta"]["name"] == "train"
    assert model["project"]["name"] == "my-proj"
    assert model["epochs"] == 3 and model["imgsz"] == 64 and model["batch_size"] == 4
    assert model["cfg"] == "yolo11n.yaml"
    listed = ok(alice.get("/v1/models"))["results"]
    assert run.model_id in [m["id"] for m in listed]


def test_the_project_is_made_once_and_reused(trainer, app) -> None:
    first, second = trainer.start(), trainer.start()
    assert first.model_id != second.model_id
    with hub_state(app).db.read() as session:
        projects = session.scalars(select(ProjectRow).where(ProjectRow.name == "my-proj")).all()
    assert len(projects) == 1


def test_a_second_run_of_the_same_name_gets_the_next_free_name(trainer, alice) -> None:
    trainer.start(name="train")
    second = trainer.start(name="train")
    assert second.answer["modelSlug"] == "train-2"
    assert record(alice, second.model_id)["meta"]["name"] == "train-2"


def test_a_project_without_owner_belongs_to_the_caller(trainer, alice) -> None:
    run = trainer.start("My Project", "exp")
    assert record(alice, run.model_id)["project"]["name"] == "my-project"


def test_retries_of_one_training_started_make_one_model(trainer, app) -> None:
    body = {"event": "training_started", "data": started_data(), "project": "alice/p", "name": "t"}
    answers = [trainer.http.post(EVENTS, json=body).json() for _ in range(4)]
    assert len({(a["modelId"], a["runId"]) for a in answers}) == 1
    with hub_state(app).db.read() as session:
        assert len(session.scalars(select(ModelRow)).all()) == 1


def test_another_owners_project_is_403_and_an_unknown_owner_404(trainer) -> None:
    response = trainer.event("training_started", started_data(), project="bob/theirs", name="t")
    message = error(response, 403)
    assert "bob" in message and response.json()["error"] == message
    error(trainer.event("training_started", started_data(), project="nobody/p", name="t"), 404)


# ---------------------------------------------------------------- epochs and the final validation


def test_epochs_are_stored_and_the_final_validation_is_the_runs_result(trainer, alice) -> None:
    run = trainer.start()
    for epoch in (0, 2, 1, 1):  # out of order, and a retry
        assert trainer.ok("epoch_end", epoch_data(epoch), run.model_id) == {
            "received": True,
            "event": "epoch_end",
        }
    trainer.ok("epoch_end", epoch_data(3, final=True, map5095=0.42), run.model_id)
    stored = series(alice, run.model_id)
    assert set(stored["train/box_loss"]) == {"0", "1", "2"}
    assert set(stored["metrics/mAP50-95(B)"]) == {"0", "1", "2"}
    assert stored["model/parameters"] == {"0": 2590230}
    assert set(stored["system/cpu"]) == {"0", "1", "2"}
    assert stored["system/gpu0_temp"]["1"] == 70
    assert stored["system/disk"]["0"] == pytest.approx(23.53, abs=0.01)
    [only] = runs_of(alice, run.model_id)
    assert only["finalEpoch"] == 3
    assert only["finalMetrics"]["metrics/mAP50-95(B)"] == 0.42
    assert "val/box_loss" not in only["finalMetrics"]
    assert only["environment"]["hostname"] == "trainer-1"
    assert only["environment"]["gitCommit"] == "abc123def456"
    assert only["trainArgs"]["save_dir"] == "/runs/detect/train"
    assert record(alice, run.model_id)["map"] == 0.42


def test_the_final_validation_after_an_early_stop_is_recognised_by_its_metrics(
    trainer, alice
) -> None:
    run = trainer.start(epochs=100)
    trainer.ok("epoch_end", epoch_data(0), run.model_id)
    trainer.ok("epoch_end", epoch_data(1, final=True), run.model_id)  # stopped after epoch 0
    assert set(series(alice, run.model_id)["train/box_loss"]) == {"0"}
    assert runs_of(alice, run.model_id)[0]["finalEpoch"] == 1


def test_training_complete_settles_the_model_and_late_events_do_not_undo_it(trainer, alice) -> None:
    run = trainer.start()
    trainer.ok("epoch_end", epoch_data(0), run.model_id)
    complete = complete_data(run.run_id, classes=2)
    trainer.ok("training_complete", complete, run.model_id)
    trainer.ok("training_complete", complete, run.model_id)  # a retry
    trainer.ok("epoch_end", epoch_data(1), run.model_id)  # overtaken by training_complete
    trainer.ok("console_output", console_data(5, "late line"), run.model_id)
    model = record(alice, run.model_id)
    assert model["status"] == "trained"
    assert model["map"] == 0.25
    assert set(series(alice, run.model_id)["train/box_loss"]) == {"0", "1"}
    [done] = runs_of(alice, run.model_id)
    assert done["state"] == "completed" and done["endedAt"]
    assert done["classNames"] == ["class0", "class1"]
    assert {p["type"] for p in done["plots"]} == {
        "confusion_matrix",
        "pr_curve",
        "f1_curve",
        "precision_curve",
        "recall_curve",
    }
    assert done["results"]["bestEpoch"] == 1


# ---------------------------------------------------------------- console


def test_console_chunks_read_back_in_order_without_colour_codes(trainer, alice, bob) -> None:
    run = trainer.start()
    trainer.ok("console_output", console_data(1700000000002, "second"), run.model_id)
    trainer.ok("console_output", console_data(1700000000001, "\x1b[34mfirst\x1b[0m"), run.model_id)
    trainer.ok("console_output", console_data(1700000000002, "second"), run.model_id)  # retry
    trainer.ok("console_output", console_data(1700000000003), run.model_id)  # 0 lines, bars only
    response = alice.get(f"/v1/models/{run.model_id}/console")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "[2026-12-04 10:00:00] first\n[2026-12-04 10:00:00] second\n"
    assert response.headers["x-console-chunk"] == "1700000000002"
    after = alice.get(f"/v1/models/{run.model_id}/console", params={"after": 1700000000001})
    assert after.text == "[2026-12-04 10:00:00] second\n"
    error(bob.get(f"/v1/models/{run.model_id}/console"), 404)


def test_a_console_chunk_of_seven_megabytes_is_accepted(trainer, alice) -> None:
    run = trainer.start()
    big = "x" * (7 * 1024 * 1024)
    trainer.ok("console_output", {"chunkId": 1, "content": big, "lineCount": 1}, run.model_id)
    assert len(alice.get(f"/v1/models/{run.model_id}/console").text) == len(big) + 1


# ---------------------------------------------------------------- cancel


def test_a_cancel_from_the_hub_reaches_the_next_epoch_end_and_ends_cancelled(
    trainer, alice, bob
) -> None:
    run = trainer.start()
    trainer.ok("epoch_end", epoch_data(0), run.model_id)
    error(bob.post(f"/v1/models/{run.model_id}/cancel"), 404)
    answer = ok(alice.post(f"/v1/models/{run.model_id}/cancel"))
    assert answer == {"state": "requested"}
    assert trainer.ok("epoch_end", epoch_data(1), run.model_id)["cancelled"] is True
    trainer.ok("epoch_end", epoch_data(2, final=True), run.model_id)
    trainer.ok("training_complete", complete_data(run.run_id), run.model_id)
    assert record(alice, run.model_id)["status"] == "cancelled"
    assert runs_of(alice, run.model_id)[0]["state"] == "cancelled"
    error(alice.post(f"/v1/models/{run.model_id}/cancel"), 409)  # nothing runs any more


def test_a_model_not_trained_through_the_platform_cannot_be_cancelled(alice) -> None:
    model_id = ok(alice.post("/v1/models", json={"meta": {"name": "hub"}}))["id"]
    assert "Platform" in error(alice.post(f"/v1/models/{model_id}/cancel"), 409)


def test_cancelling_a_silent_run_cancels_the_model_at_once(trainer, alice, app) -> None:
    run = trainer.start()
    with hub_state(app).db.write() as session:
        session.execute(update(RunRow).values(last_event_at=utcnow() - timedelta(hours=2)))
    assert ok(alice.post(f"/v1/models/{run.model_id}/cancel")) == {"state": "cancelled"}
    assert record(alice, run.model_id)["status"] == "cancelled"


# ---------------------------------------------------------------- resume


def test_a_resume_continues_the_model_with_a_new_run_and_appends_epochs(trainer, alice) -> None:
    run = trainer.start()
    trainer.ok("epoch_end", epoch_data(0), run.model_id)
    trainer.ok("epoch_end", epoch_data(1), run.model_id)
    resumed = trainer.event(
        "training_started", started_data(save_dir="/runs/detect/train"), modelId=run.model_id
    ).json()
    assert resumed["modelId"] == run.model_id
    assert resumed["runId"] != run.run_id
    trainer.ok("epoch_end", epoch_data(1), run.model_id)  # the epoch the kill interrupted
    trainer.ok("epoch_end", epoch_data(2), run.model_id)
    assert set(series(alice, run.model_id)["train/box_loss"]) == {"0", "1", "2"}
    assert [r["id"] for r in runs_of(alice, run.model_id)] == [run.run_id, resumed["runId"]]
    assert record(alice, run.model_id)["status"] == "training"


def test_a_resume_of_an_unknown_model_is_404_so_the_client_starts_a_new_one(trainer) -> None:
    response = trainer.event("training_started", started_data(), modelId="A" * 20)
    error(response, 404)


def test_a_resume_of_a_cancelled_model_answers_cancelled(trainer, alice) -> None:
    run = trainer.start()
    ok(alice.post(f"/v1/models/{run.model_id}/cancel"))
    trainer.ok("training_complete", complete_data(run.run_id), run.model_id)
    answer = trainer.ok("training_started", started_data(), run.model_id)
    assert answer["cancelled"] is True and answer["modelId"] == run.model_id


# ---------------------------------------------------------------- keys and permissions


def test_both_spellings_of_a_key_report_to_the_same_model(app, users, alice) -> None:
    hub = PlatformClient(app, users.alice.key)
    platform = PlatformClient(app, platform_spelling(users.alice.key))
    run = hub.start()
    platform.ok("epoch_end", epoch_data(0), run.model_id)
    assert "0" in series(alice, run.model_id)["train/box_loss"]


def test_a_new_key_is_answered_in_both_spellings(app, alice) -> None:
    created = ok(alice.post("/v1/keys", json={"name": "laptop"}))
    assert created["platformKey"] == "ul_" + created["key"][2:]
    run = PlatformClient(app, created["platformKey"]).start()
    assert record(alice, run.model_id)["status"] == "training"
    assert all(k["platformKey"] is None for k in ok(alice.get("/v1/keys")))


def test_events_for_another_users_model_are_refused_without_401(app, users, trainer) -> None:
    run = trainer.start()
    mallory = PlatformClient(app, users.bob.key)
    for event, data in (
        ("epoch_end", epoch_data(0)),
        ("console_output", console_data(1, "x")),
        ("training_complete", complete_data(run.run_id)),
        ("training_started", started_data()),
    ):
        response = mallory.event(event, data, modelId=run.model_id)
        assert response.status_code == 404, response.text
        assert response.json()["success"] is False


def test_only_a_bad_key_is_401(app, trainer) -> None:
    stranger = PlatformClient(app, "ul_" + "0" * 40)
    error(stranger.event("epoch_end", epoch_data(0), modelId="A" * 20), 401)


def test_the_account_summary_checks_a_key_for_yolo_login(app, users) -> None:
    for key in (users.bob.key, platform_spelling(users.bob.key)):
        answer = PlatformClient(app, key).http.get("/api/account/summary")
        assert answer.status_code == 200
        assert answer.json()["username"] == "bob"
        assert set(answer.json()["counts"]) == {"projects", "datasets", "models"}
    error(PlatformClient(app, "ul_" + "1" * 40).http.get("/api/account/summary"), 401)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[1, 2]", 400),
        (b'{"event": "no_such_event", "data": {}}', 422),
        (b'{"event": "epoch_end", "data": {"epoch": "3"}, "modelId": "AAAAAAAAAAAAAAAAAAAA"}', 422),
        (b'{"event": "epoch_end", "data": {"epoch": 0}}', 422),
        (b'{"event": "console_output", "data": {"chunkId": -1}, "modelId": "x"}', 422),
    ],
)
def test_malformed_events_get_a_clear_4xx(trainer, body: bytes, status: int) -> None:
    trainer.start()
    response = trainer.http.post(EVENTS, content=body, headers={"content-type": "application/json"})
    message = error(response, status)
    assert response.json()["error"] == message


def test_a_body_over_eight_megabytes_is_413(trainer) -> None:
    run = trainer.start()
    huge = {"chunkId": 1, "content": "x" * (8 * 1024 * 1024 + 10), "lineCount": 1}
    error(trainer.event("console_output", huge, modelId=run.model_id), 413)


def test_a_model_id_that_is_no_id_is_404(trainer) -> None:
    error(trainer.event("epoch_end", epoch_data(0), modelId="../../etc"), 404)


# ---------------------------------------------------------------- liveness


def age(app, seconds: float) -> None:
    """Make every run and agent `seconds` older, as if that long had passed without a word."""
    with hub_state(app).db.write() as session:
        for agent in session.scalars(select(AgentRow)):
            agent.last_seen -= timedelta(seconds=seconds)
        for run in session.scalars(select(RunRow)):
            run.started_at -= timedelta(seconds=seconds)
            run.last_event_at -= timedelta(seconds=seconds)
            if run.last_epoch_at is not None:
                run.last_epoch_at -= timedelta(seconds=seconds)


def liveness(client, model_id: str) -> str:
    return runs_of(client, model_id)[-1]["liveness"]


def test_a_silent_run_turns_stale_then_offline_and_an_event_brings_it_back(
    trainer, alice, app
) -> None:
    run = trainer.start()
    age(app, 100)  # the first epoch took 100 s
    trainer.ok("epoch_end", epoch_data(0), run.model_id)  # bound: max(60, 2 x 100 s) = 210 s
    assert liveness(alice, run.model_id) == "online"
    age(app, 180)
    assert liveness(alice, run.model_id) == "online"  # slow, but within two epochs
    age(app, 60)
    assert liveness(alice, run.model_id) == "stale"
    assert record(alice, run.model_id)["online"] is False
    age(app, 200)
    assert liveness(alice, run.model_id) == "offline"
    assert record(alice, run.model_id)["status"] == "training"
    trainer.ok("console_output", console_data(9, "still here"), run.model_id)
    assert liveness(alice, run.model_id) == "online"
    assert record(alice, run.model_id)["online"] is True


def test_nul_characters_anywhere_in_events_never_give_a_500(trainer, alice) -> None:
    """PostgreSQL text cannot hold NUL: such text is stored without it, or matches nothing."""
    nul = "x\x00y"
    data = started_data()
    data["trainArgs"]["data"] = nul
    data["environment"].update(hostname=nul, command=nul)
    for project in (f"al{nul}/p", f"alice/p{nul}", nul):
        response = trainer.event("training_started", data, project=project, name=nul)
        assert response.status_code < 500, response.text
    run = trainer.start()
    epoch = epoch_data(0)
    epoch["metrics"][nul] = 1.0
    epoch["system"]["gpus"][nul] = {"usage": 1}
    trainer.ok("epoch_end", epoch, run.model_id)
    chunk = {"chunkId": 1, "content": nul, "lineCount": 1, "progress": {nul: nul}}
    trainer.ok("console_output", chunk, run.model_id)
    complete = complete_data(run.run_id)
    complete.update(classNames=[nul], results={"metrics": {nul: 1}, nul: nul})
    complete["plots"].append({"type": nul, nul: [nul]})
    trainer.ok("training_complete", complete, run.model_id)
    assert runs_of(alice, run.model_id)[0]["classNames"] == ["xy"]
    assert "xy" in alice.get(f"/v1/models/{run.model_id}/console").text
