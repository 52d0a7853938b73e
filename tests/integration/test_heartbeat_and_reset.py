"""Heartbeats (agentId handshake), /model-reset, and who may call the export/predict family.

docs/protocol/hub-v1.md §5.11-§5.15, §5.22, §7.4 and §16.5-§16.6.
"""

from pathlib import Path

from tests.factories import (
    create_model,
    epoch_metrics,
    error,
    ok,
    revoke_key,
    stored_blobs,
    upload_weights,
    weights_file,
)
from trainhub.protocol.ids import is_id

JSON = {"content-type": "application/json"}
UNKNOWN_ID = "A" * 20
MALFORMED_IDS = ["short", "B" * 21, "abc-def_ghi.jkl-mnop"]
AGENT = "python-3.11.7-local"


def read(client, model_id: str) -> dict:
    return ok(client.get(f"/v1/models/{model_id}"))


def beat(client, model_id: str, agent_id: str | None = None, **extra):
    body = {"agent": AGENT, "agentId": agent_id, **extra}
    return client.post(f"/v1/agent/heartbeat/models/{model_id}", json=body)


def beat_id(client, model_id: str, agent_id: str | None = None, **extra) -> str:
    return str(ok(beat(client, model_id, agent_id, **extra))["agentId"])


def reset(client, model_id: str):
    return client.post("/model-reset", json={"modelId": model_id})


def legacy_routes(model_id: str) -> list[tuple[str, str, dict]]:
    """Every model route of this file, each with a body that would be accepted."""
    return [
        ("POST", f"/v1/agent/heartbeat/models/{model_id}", {"json": {"agentId": None}}),
        ("POST", "/model-reset", {"json": {"modelId": model_id}}),
        ("POST", f"/v1/models/{model_id}/export", {"json": {"format": "onnx"}}),
        ("POST", f"/qa/model/{model_id}/clear_exports", {}),
        ("POST", f"/v1/predict/{model_id}", {"files": {"image": ("image", b"\x89PNG")}}),
    ]


# ---------------------------------------------------------------- heartbeat handshake


def test_first_beat_without_an_agent_id_gets_a_new_one(alice) -> None:
    model_id = create_model(alice)
    response = beat(alice, model_id)
    assert response.status_code == 200
    agent_id = ok(response)["agentId"]
    assert isinstance(agent_id, str) and is_id(agent_id)
    assert response.json()["message"] == "heartbeat recorded"

    record = read(alice, model_id)
    assert record["status"] == "training"
    assert record["online"] is True and record["lastHeartbeat"].endswith("Z")
    assert [(a["id"], a["name"], a["state"]) for a in record["agents"]] == [
        (agent_id, AGENT, "running")
    ]
    assert record["agents"][0]["intervalSeconds"] == 300.0


def test_the_same_agent_id_echoed_back_keeps_the_same_id(alice) -> None:
    model_id = create_model(alice)
    agent_id = beat_id(alice, model_id)
    for _ in range(3):
        assert beat_id(alice, model_id, agent_id) == agent_id
    assert len(read(alice, model_id)["agents"]) == 1


def test_a_missing_agent_id_field_counts_as_null(alice) -> None:
    model_id = create_model(alice)
    response = alice.post(f"/v1/agent/heartbeat/models/{model_id}", json={"agent": AGENT})
    assert is_id(ok(response)["agentId"])


def test_an_agent_id_issued_for_another_model_gets_a_new_id(alice) -> None:
    first, second = create_model(alice), create_model(alice)
    first_agent = beat_id(alice, first)
    second_agent = beat_id(alice, second, first_agent)
    assert second_agent != first_agent and is_id(second_agent)
    assert beat_id(alice, second, second_agent) == second_agent
    assert [a["id"] for a in read(alice, first)["agents"]] == [first_agent]


def test_an_agent_id_this_server_never_issued_gets_a_new_id(alice) -> None:
    model_id = create_model(alice)
    for unknown in (UNKNOWN_ID, "not-an-agent-id", "", "x" * 500):
        issued = beat_id(alice, model_id, unknown)
        assert issued != unknown and is_id(issued)


def test_an_agent_id_of_another_users_model_gets_a_new_id(alice, bob) -> None:
    bobs_agent = beat_id(bob, create_model(bob))
    model_id = create_model(alice)
    assert beat_id(alice, model_id, bobs_agent) != bobs_agent


def test_two_concurrent_agents_are_both_answered_and_reported(alice) -> None:
    model_id = create_model(alice)
    first = beat_id(alice, model_id)
    response = beat(alice, model_id)
    second = ok(response)["agentId"]
    assert second != first
    assert response.json()["message"] == "2 agents are training this model"
    again = beat(alice, model_id, first)
    assert ok(again)["agentId"] == first
    assert again.json()["message"] == "2 agents are training this model"
    record = read(alice, model_id)
    assert {a["id"] for a in record["agents"]} == {first, second}
    assert all(a["online"] for a in record["agents"])


def test_a_finished_agent_no_longer_counts_as_concurrent(alice) -> None:
    model_id = create_model(alice)
    first = beat_id(alice, model_id)
    ok(beat(alice, model_id, first, state="finished"))
    response = beat(alice, model_id)
    assert response.json()["message"] == "heartbeat recorded"
    agents = {a["id"]: a for a in read(alice, model_id)["agents"]}
    assert agents[first]["state"] == "finished" and agents[first]["online"] is False


# ---------------------------------------------------------------- interval and state extensions


def test_the_interval_field_is_recorded_and_clamped(alice) -> None:
    model_id = create_model(alice)
    for sent, stored in ((60, 60.0), (2.5, 2.5), (0.01, 1.0), (-5, 1.0), (10**9, 86400.0)):
        agent_id = beat_id(alice, model_id, interval=sent)
        agent = next(a for a in read(alice, model_id)["agents"] if a["id"] == agent_id)
        assert agent["intervalSeconds"] == stored, sent


def test_the_interval_of_a_known_agent_can_change(alice) -> None:
    model_id = create_model(alice)
    agent_id = beat_id(alice, model_id, interval=60)
    beat_id(alice, model_id, agent_id, interval=120)
    assert read(alice, model_id)["agents"][0]["intervalSeconds"] == 120.0


NOT_NUMBERS = ["60", True, [60], {"s": 60}]


def test_an_interval_that_is_not_a_number_answers_422(alice, subtests) -> None:
    model_id = create_model(alice)
    for interval in NOT_NUMBERS:
        with subtests.test(interval=interval):
            assert "interval" in error(beat(alice, model_id, interval=interval), 422)
    assert read(alice, model_id)["status"] == "new"


NON_FINITE = [b"NaN", b"Infinity", b"1e999"]


def test_a_non_finite_interval_is_refused(alice, subtests) -> None:
    model_id = create_model(alice)
    for literal in NON_FINITE:
        with subtests.test(literal=literal):
            body = b'{"agent": "a", "agentId": null, "interval": ' + literal + b"}"
            url = f"/v1/agent/heartbeat/models/{model_id}"
            error(alice.post(url, content=body, headers=JSON), 400)
    assert read(alice, model_id)["agents"] == []


def test_state_failed_marks_a_training_model_failed(alice) -> None:
    model_id = create_model(alice)
    agent_id = beat_id(alice, model_id)
    assert read(alice, model_id)["status"] == "training"
    assert beat_id(alice, model_id, agent_id, state="failed") == agent_id
    record = read(alice, model_id)
    assert record["status"] == "failed"
    assert record["agents"][0]["state"] == "failed" and record["online"] is False


def test_a_failed_model_trains_again_on_the_next_running_beat(alice) -> None:
    model_id = create_model(alice)
    agent_id = beat_id(alice, model_id)
    beat_id(alice, model_id, agent_id, state="failed")
    beat_id(alice, model_id, state="running")
    assert read(alice, model_id)["status"] == "training"


def test_state_failed_on_a_new_model_leaves_it_new(alice) -> None:
    model_id = create_model(alice)
    beat_id(alice, model_id, state="failed")
    assert read(alice, model_id)["status"] == "new"


def test_state_finished_leaves_the_status_alone(alice) -> None:
    model_id = create_model(alice)
    agent_id = beat_id(alice, model_id)
    beat_id(alice, model_id, agent_id, state="finished")
    assert read(alice, model_id)["status"] == "training"


def test_beats_never_change_a_trained_model(alice, tmp_path: Path) -> None:
    model_id = create_model(alice)
    agent_id = beat_id(alice, model_id)
    path, _ = weights_file(tmp_path / "best.pt")
    ok(upload_weights(alice, model_id, path, final=True))
    record = read(alice, model_id)
    assert record["status"] == "trained" and record["agents"][0]["state"] == "finished"
    for state in ("running", "failed", "finished"):
        beat_id(alice, model_id, agent_id, state=state)
        assert read(alice, model_id)["status"] == "trained"


MALFORMED_BEATS = [
    {"agent": AGENT, "agentId": None, "state": "crashed"},
    {"agent": AGENT, "agentId": None, "state": None},
    {"agent": AGENT, "agentId": 42},
    {"agent": AGENT, "agentId": ["x"]},
    {"agent": 3, "agentId": None},
    {"agent": None, "agentId": None},
]


def test_malformed_heartbeat_fields_answer_422(alice, subtests) -> None:
    model_id = create_model(alice)
    for body in MALFORMED_BEATS:
        with subtests.test(body=body):
            error(alice.post(f"/v1/agent/heartbeat/models/{model_id}", json=body), 422)
    assert read(alice, model_id)["agents"] == []


BEATS_NOT_A_JSON_OBJECT = [
    (b'{"agent": "a", "agentId": ', JSON, 400),
    (b"[]", JSON, 400),
    (b"", JSON, 400),
    (b'{"agent": "a"}', {"content-type": "text/plain"}, 415),
    (b'{"agent": "a"}', {}, 415),
]


def test_heartbeat_bodies_that_are_not_a_json_object_are_refused(alice, subtests) -> None:
    model_id = create_model(alice)
    url = f"/v1/agent/heartbeat/models/{model_id}"
    for content, headers, status in BEATS_NOT_A_JSON_OBJECT:
        with subtests.test(content=content, headers=headers):
            error(alice.post(url, content=content, headers=headers), status)
    assert read(alice, model_id)["agents"] == []


def test_a_long_agent_name_is_cut_and_a_nul_character_does_not_break_the_database(alice) -> None:
    model_id = create_model(alice)
    beat_id(alice, model_id, agent="x" * 1000)
    beat_id(alice, model_id, agent="python\x00-3.11")
    names = sorted(a["name"] for a in read(alice, model_id)["agents"])
    assert names == sorted(["x" * 200, "python-3.11"])


# ---------------------------------------------------------------- /model-reset


def test_reset_returns_a_trained_model_to_new_and_removes_its_blobs(
    alice, anon, settings, tmp_path: Path
) -> None:
    model_id = create_model(alice, lineage={"parent": {"name": "yolo11n.pt"}})
    keep = create_model(alice)
    agent_id = beat_id(alice, model_id)
    ok(alice.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(0)}))
    last, _ = weights_file(tmp_path / "last.pt")
    best, _ = weights_file(tmp_path / "best.pt")
    other, _ = weights_file(tmp_path / "other.pt")
    ok(upload_weights(alice, model_id, last))
    ok(upload_weights(alice, model_id, best, final=True, map="0.5"))
    ok(upload_weights(alice, keep, other))
    before = read(alice, model_id)
    assert before["status"] == "trained" and len(stored_blobs(settings.data_dir)) == 3

    response = reset(alice, model_id)
    assert response.status_code == 200
    assert ok(response) == {"id": model_id}

    record = read(alice, model_id)
    assert record["status"] == "new"
    assert record["has_last_weights"] is False and record["has_best_weights"] is False
    assert record["resume"] is None
    assert record["weights"] == "yolo11n.pt"  # back to the parent weights
    assert record["epoch"] is None and record["map"] is None
    assert record["agents"] == [] and record["lastHeartbeat"] is None
    assert ok(alice.get(f"/v1/models/{model_id}/metrics")) == []
    assert record["config"] == before["config"] and record["meta"] == before["meta"]
    error(anon.get(before["weights"]), 404)
    error(anon.get(before["resume"]), 404)
    remaining = stored_blobs(settings.data_dir)
    assert len(remaining) == 1 and keep in str(remaining[0])
    assert beat_id(alice, model_id, agent_id) != agent_id


def test_a_reset_model_can_be_trained_again(alice, anon, tmp_path: Path) -> None:
    model_id = create_model(alice)
    first, _ = weights_file(tmp_path / "first.pt")
    ok(upload_weights(alice, model_id, first, final=True))
    ok(reset(alice, model_id))
    ok(alice.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(0, loss=0.5)}))
    assert read(alice, model_id)["status"] == "training"
    second, _ = weights_file(tmp_path / "second.pt")
    ok(upload_weights(alice, model_id, second, final=True))
    record = read(alice, model_id)
    assert record["status"] == "trained"
    assert anon.get(record["weights"]).content == second.read_bytes()
    assert ok(alice.get(f"/v1/models/{model_id}/metrics")) == [
        {"meta": {"name": "loss"}, "data": {"0": 0.5}}
    ]


def test_resetting_a_new_model_is_harmless(alice) -> None:
    model_id = create_model(alice)
    assert reset(alice, model_id).status_code == 200
    assert read(alice, model_id)["status"] == "new"


WITHOUT_MODEL_ID = [{}, {"modelId": None}, {"modelId": 42}, {"model": "x"}]


def test_reset_without_a_model_id_string_answers_422(alice, subtests) -> None:
    for body in WITHOUT_MODEL_ID:
        with subtests.test(body=body):
            assert "modelId" in error(alice.post("/model-reset", json=body), 422)


def test_reset_of_unknown_or_malformed_ids_answers_404(alice) -> None:
    for bad_id in (UNKNOWN_ID, *MALFORMED_IDS):
        error(reset(alice, bad_id), 404)


RESETS_NOT_A_JSON_OBJECT = [
    (b'{"modelId": ', JSON, 400),
    (b'["modelId"]', JSON, 400),
    (b"", JSON, 400),
    (b'{"modelId": "x"}', {"content-type": "text/plain"}, 415),
    (b"modelId=x", {"content-type": "application/x-www-form-urlencoded"}, 415),
]


def test_reset_bodies_that_are_not_a_json_object_are_refused(alice, subtests) -> None:
    for content, headers, status in RESETS_NOT_A_JSON_OBJECT:
        with subtests.test(content=content, headers=headers):
            error(alice.post("/model-reset", content=content, headers=headers), status)


# ---------------------------------------------------------------- export, predict, clear_exports


def test_clear_exports_answers_200(alice) -> None:
    model_id = create_model(alice)
    response = alice.post(f"/qa/model/{model_id}/clear_exports")
    assert response.status_code == 200
    assert ok(response) == {"id": model_id}


def test_the_export_family_needs_a_key(alice, anon) -> None:
    model_id = create_model(alice, public=True)
    error(anon.post(f"/v1/models/{model_id}/export", json={"format": "onnx"}), 401)
    error(anon.post("/get-export", json={"modelId": model_id, "format": "onnx"}), 401)
    error(anon.post(f"/qa/model/{model_id}/clear_exports"), 401)


def test_anonymous_predict_answers_401(alice, anon) -> None:
    for public in (False, True):
        model_id = create_model(alice, public=public)
        error(anon.post(f"/v1/predict/{model_id}", files={"image": ("image", b"x")}), 401)


# ---------------------------------------------------------------- who may do what


def test_unknown_and_malformed_ids_answer_404_on_every_route(alice) -> None:
    for bad_id in (UNKNOWN_ID, *MALFORMED_IDS):
        for method, path, kwargs in legacy_routes(bad_id):
            error(alice.request(method, path, **kwargs), 404)


def test_bob_gets_404_on_every_route_of_alices_private_model(alice, bob, tmp_path) -> None:
    model_id = create_model(alice)
    path, _ = weights_file(tmp_path / "best.pt")
    ok(upload_weights(alice, model_id, path, final=True))
    for method, url, kwargs in legacy_routes(model_id):
        error(bob.request(method, url, **kwargs), 404)
    record = read(alice, model_id)
    assert record["status"] == "trained" and record["agents"] == []


def test_bob_gets_403_when_writing_alices_public_model(alice, bob, tmp_path) -> None:
    model_id = create_model(alice, public=True)
    path, _ = weights_file(tmp_path / "best.pt")
    ok(upload_weights(alice, model_id, path, final=True))
    assert "read-only" in error(beat(bob, model_id), 403)
    error(reset(bob, model_id), 403)
    error(bob.post(f"/qa/model/{model_id}/clear_exports"), 403)
    record = read(bob, model_id)
    assert record["status"] == "trained" and record["agents"] == []


def test_anonymous_heartbeat_and_reset_answer_401(alice, anon) -> None:
    model_id = create_model(alice, public=True)
    error(beat(anon, model_id), 401)
    error(reset(anon, model_id), 401)
    assert read(alice, model_id)["agents"] == []


def test_a_revoked_key_answers_401_on_every_route(app, bob, users) -> None:
    model_id = create_model(bob, public=True)
    revoke_key(app, users.bob)
    for method, path, kwargs in legacy_routes(model_id):
        error(bob.request(method, path, **kwargs), 401)
    error(bob.post("/get-export", json={"modelId": model_id, "format": "onnx"}), 401)
