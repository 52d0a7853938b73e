"""Models over HTTP: create (ultralytics and hub-sdk payloads), read, list, PATCH, delete.

docs/protocol/hub-v1.md §5.3-§5.7, §6 and §16.4; every error answers
`{"success": false, "message"}`.
"""

from pathlib import Path

from tests.factories import (
    create_dataset,
    create_model,
    epoch_metrics,
    error,
    ok,
    published_name,
    revoke_key,
    stored_blobs,
    upload_weights,
    weights_file,
)

ULTRALYTICS_CREATE = {
    "config": {
        "batchSize": 4,
        "epochs": 5,
        "imageSize": 64,
        "patience": 100,
        "device": "cpu",
        "cache": "False",
    },
    "dataset": {"name": "/home/user/datasets/coco8.yaml"},
    "lineage": {"architecture": {"name": "yolo11n"}, "parent": {}},
    "meta": {"name": "yolo11n.yaml"},
}
JSON = {"content-type": "application/json"}
UNKNOWN_ID = "A" * 20
SERVER_FIELDS = [
    "id",
    "status",
    "weights",
    "resume",
    "has_last_weights",
    "has_best_weights",
    "is_pretrained",
    "cfg",
    "data",
    "train_args",
    "batch_size",
    "epochs",
    "imgsz",
    "patience",
    "device",
    "cache",
    "createdAt",
    "updatedAt",
    "url",
    "agents",
    "metrics",
    "map",
]
MALFORMED_IDS = ["short", "B" * 21, "abc-def_ghi.jkl-mnop", "%2e%2e%2f%2e%2e%2fetc", "'; drop--"]


def read(client, model_id: str) -> dict:
    return ok(client.get(f"/v1/models/{model_id}"))


def model_routes(model_id: str) -> list[tuple[str, str, dict]]:
    return [
        ("GET", f"/v1/models/{model_id}", {}),
        ("PATCH", f"/v1/models/{model_id}", {"json": {"meta": {"name": "renamed"}}}),
        ("DELETE", f"/v1/models/{model_id}?hard=True", {}),
    ]


# ---------------------------------------------------------------- create: ultralytics payload


def test_ultralytics_create_payload_answers_the_new_id_and_reads_back_trainable(alice) -> None:
    created = ok(alice.post("/v1/models", json=ULTRALYTICS_CREATE))
    assert set(created) == {"id"} and len(created["id"]) == 20

    record = read(alice, created["id"])
    assert record["id"] == created["id"]
    assert record["status"] == "new"
    assert record["meta"]["name"] == "yolo11n.yaml"
    assert record["cfg"] == "yolo11n.yaml"
    assert record["is_pretrained"] is False and record["is_custom"] is True
    assert record["has_last_weights"] is False and record["has_best_weights"] is False
    assert record["weights"] is None and record["resume"] is None
    assert record["data"] == "/home/user/datasets/coco8.yaml"
    assert record["train_args"] == {
        "data": "/home/user/datasets/coco8.yaml",
        "epochs": 5,
        "imgsz": 64,
        "batch": 4,
        "patience": 100,
        "device": "cpu",
        "cache": False,
    }
    flat = {k: record[k] for k in ("batch_size", "epochs", "imgsz", "patience", "device", "cache")}
    assert flat == {
        "batch_size": 4,
        "epochs": 5,
        "imgsz": 64,
        "patience": 100,
        "device": "cpu",
        "cache": False,
    }
    assert "dataset" in record and "project" in record
    assert record["public"] is False


def test_ultralytics_device_none_is_left_out_of_train_args(alice) -> None:
    body = {**ULTRALYTICS_CREATE, "config": {**ULTRALYTICS_CREATE["config"], "device": "None"}}
    record = read(alice, ok(alice.post("/v1/models", json=body))["id"])
    assert "device" not in record["train_args"]
    assert record["device"] is None


def test_ultralytics_fractional_batch_and_image_size_list_are_kept(alice) -> None:
    config = {**ULTRALYTICS_CREATE["config"], "batchSize": 0.7, "imageSize": [640, 480]}
    record = read(
        alice, ok(alice.post("/v1/models", json={**ULTRALYTICS_CREATE, "config": config}))["id"]
    )
    assert record["train_args"]["batch"] == 0.7 and record["batch_size"] == 0.7
    assert record["train_args"]["imgsz"] == [640, 480] and record["imgsz"] == [640, 480]


def test_ultralytics_parent_weights_name_makes_a_pretrained_model(alice) -> None:
    body = {
        **ULTRALYTICS_CREATE,
        "lineage": {"architecture": {"name": "yolo11n"}, "parent": {"name": "yolo11n.pt"}},
        "meta": {"name": "yolo11n.pt"},
    }
    record = read(alice, ok(alice.post("/v1/models", json=body))["id"])
    assert record["is_pretrained"] is True and record["is_custom"] is False
    assert record["weights"] == "yolo11n.pt"
    assert record["cfg"] == "yolo11n.yaml"
    assert record["status"] == "new"


# ---------------------------------------------------------------- create: hub-sdk payloads


def test_hub_sdk_string_config_values_are_parsed_into_train_args(alice) -> None:
    model_id = create_model(
        alice,
        config={
            "batchSize": "8",
            "epochs": "5",
            "imageSize": "640",
            "patience": "10",
            "device": "0",
            "cache": "ram",
        },
    )
    record = read(alice, model_id)
    assert record["train_args"] == {
        "epochs": 5,
        "imgsz": 640,
        "batch": 8,
        "patience": 10,
        "device": "0",
        "cache": "ram",
    }
    assert record["config"] == {
        "batchSize": 8,
        "epochs": 5,
        "imageSize": 640,
        "patience": 10,
        "device": "0",
        "cache": "ram",
    }
    assert (record["batch_size"], record["epochs"], record["imgsz"]) == (8, 5, 640)
    assert (record["patience"], record["device"], record["cache"]) == (10, "0", "ram")


CONFIG_NORMALISED = [
    ({"batchSize": "0.5"}, {"batchSize": 0.5}),
    ({"batchSize": "-1"}, {"batchSize": -1}),
    ({"epochs": "5.0"}, {"epochs": 5}),
    ({"epochs": " 7 "}, {"epochs": 7}),
    ({"cache": "True"}, {"cache": True}),
    ({"cache": "disk"}, {"cache": "disk"}),
    ({"cache": False}, {"cache": False}),
    ({"device": ""}, {}),
    ({"device": "None"}, {}),
    ({"device": "0,1"}, {"device": "0,1"}),
    ({"device": 0}, {"device": "0"}),
    ({"epochs": None}, {}),
    ({"imageSize": ["640", 480]}, {"imageSize": [640, 480]}),
    ({"custom": "kept"}, {"custom": "kept"}),
]


def test_hub_sdk_config_strings_are_normalised(alice, subtests) -> None:
    for sent, stored in CONFIG_NORMALISED:
        with subtests.test(config=sent):
            assert read(alice, create_model(alice, config=sent))["config"] == stored


def test_cache_false_string_becomes_boolean_false_in_train_args(alice) -> None:
    record = read(alice, create_model(alice, config={"cache": "False", "epochs": 3}))
    assert record["train_args"] == {"epochs": 3, "cache": False}
    assert record["cache"] is False


INVALID_CONFIGS = [
    {"epochs": "abc"},
    {"epochs": 0},
    {"epochs": 2.5},
    {"epochs": True},
    {"epochs": "inf"},
    {"epochs": "nan"},
    {"epochs": "-inf"},
    {"patience": -1},
    {"patience": "1e999"},
    {"batchSize": "x"},
    {"batchSize": -2},
    {"batchSize": "infinity"},
    {"imageSize": []},
    {"imageSize": [640, 480, 320]},
    {"imageSize": [640, "x"]},
    {"imageSize": 0},
    {"imageSize": 64.5},
    {"imageSize": "NaN"},
    {"cache": "sometimes"},
    {"cache": 1},
]


def test_invalid_config_values_are_refused_with_422(alice, subtests) -> None:
    for config in INVALID_CONFIGS:
        with subtests.test(config=config):
            message = error(alice.post("/v1/models", json={"config": config}), 422)
            assert f"config.{next(iter(config))}" in message
    assert ok(alice.get("/v1/models"))["total"] == 0


def test_unknown_top_level_keys_are_kept_in_the_record(alice) -> None:
    record = read(alice, create_model(alice, description="made by a test", tags=["a", "b"]))
    assert record["description"] == "made by a test"
    assert record["tags"] == ["a", "b"]


def test_architecture_name_becomes_cfg_yaml(alice) -> None:
    assert read(alice, create_model(alice, lineage={"architecture": {"name": "yolo11s-seg"}}))[
        "cfg"
    ] == ("yolo11s-seg.yaml")
    named_yaml = create_model(alice, lineage={"architecture": {"name": "yolov8n-pose.yaml"}})
    assert read(alice, named_yaml)["cfg"] == "yolov8n-pose.yaml"


def test_missing_architecture_falls_back_to_the_default_cfg(alice) -> None:
    model_id = ok(alice.post("/v1/models", json={"meta": {"name": "bare"}}))["id"]
    record = read(alice, model_id)
    assert record["cfg"] == "yolo11n.yaml"
    assert record["train_args"] == {}
    assert record["meta"]["name"] == "bare"


def test_an_empty_create_body_object_makes_a_model_with_a_default_name(alice) -> None:
    record = read(alice, ok(alice.post("/v1/models", json={}))["id"])
    assert record["meta"]["name"] == "model" and record["status"] == "new"


MALFORMED_LINEAGES = [
    {"architecture": "yolo11n"},
    {"architecture": ["yolo11n"]},
    {"architecture": {"name": 11}},
    {"parent": "yolo11n.pt"},
    {"parent": {"name": {"nested": True}}},
]


def test_malformed_lineage_is_refused_with_422_instead_of_breaking_reads(alice, subtests) -> None:
    model_id = create_model(alice)
    for lineage in MALFORMED_LINEAGES:
        with subtests.test(lineage=lineage):
            assert "lineage." in error(alice.post("/v1/models", json={"lineage": lineage}), 422)
            error(alice.patch(f"/v1/models/{model_id}", json={"lineage": lineage}), 422)
    assert read(alice, model_id)["cfg"] == "yolo11n.yaml"
    assert ok(alice.get("/v1/models"))["total"] == 1


def test_parent_id_of_a_trained_model_gives_a_signed_url_of_its_best_weights(
    alice, anon, tmp_path: Path
) -> None:
    parent_id = create_model(alice)
    child_id = create_model(
        alice, lineage={"architecture": {"name": "yolo11n"}, "parent": {"id": parent_id}}
    )
    before = read(alice, child_id)
    assert before["is_pretrained"] is True and before["weights"] is None

    path, _ = weights_file(tmp_path / "best.pt")
    ok(upload_weights(alice, parent_id, path, final=True, epoch=2))
    child = read(alice, child_id)
    assert f"{parent_id}/best.pt" in child["weights"]
    assert child["weights"].endswith(".pt")
    assert published_name(child["weights"]) == published_name(read(alice, parent_id)["weights"])
    assert child["status"] == "new" and child["has_best_weights"] is False
    fetched = anon.get(child["weights"])
    assert fetched.status_code == 200 and fetched.content == path.read_bytes()


def test_parent_id_must_name_a_model_the_caller_may_read(alice, bob) -> None:
    bobs_private = create_model(bob)
    bobs_public = create_model(bob, public=True)
    for parent in (UNKNOWN_ID, "not-an-id", bobs_private):
        body = {"lineage": {"parent": {"id": parent}}}
        assert "not found" in error(alice.post("/v1/models", json=body), 404)
    error(alice.post("/v1/models", json={"lineage": {"parent": {"id": 12345}}}), 422)
    model_id = create_model(alice, lineage={"parent": {"id": bobs_public}})
    assert read(alice, model_id)["is_pretrained"] is True


def test_parent_weights_of_another_user_are_linked_only_while_that_model_is_public(
    alice, bob, anon, tmp_path: Path
) -> None:
    parent_id = create_model(bob, public=True)
    path, _ = weights_file(tmp_path / "best.pt")
    ok(upload_weights(bob, parent_id, path, final=True))
    child_id = create_model(alice, lineage={"parent": {"id": parent_id}})
    assert f"{parent_id}/best.pt" in read(alice, child_id)["weights"]

    ok(bob.patch(f"/v1/models/{parent_id}", json={"public": False}))
    record = read(alice, child_id)
    assert record["weights"] is None and record["is_pretrained"] is True
    error(anon.get(f"/v1/models/{parent_id}"), 404)


def test_dataset_id_links_the_dataset_archive_as_train_args_data(alice) -> None:
    dataset_id = create_dataset(alice)
    model_id = create_model(alice, datasetId=dataset_id)
    record = read(alice, model_id)
    dataset = ok(alice.get(f"/v1/datasets/{dataset_id}"))
    assert record["datasetId"] == dataset_id
    assert record["dataset"]["id"] == dataset_id
    assert published_name(record["data"]) == published_name(dataset["url"])
    assert record["data"].startswith("http://testserver/")
    assert record["train_args"]["data"] == record["data"]  # one read, one signature
    assert record["train_args"]["epochs"] == 3


def test_dataset_id_must_be_a_readable_dataset(alice, bob) -> None:
    bobs_private = create_dataset(bob)
    bobs_public = create_dataset(bob, public=True)
    error(alice.post("/v1/models", json={"datasetId": UNKNOWN_ID}), 404)
    error(alice.post("/v1/models", json={"datasetId": bobs_private}), 404)
    error(alice.post("/v1/models", json={"datasetId": "not-an-id"}), 422)
    error(alice.post("/v1/models", json={"datasetId": 42}), 422)
    model_id = create_model(alice, datasetId=bobs_public)
    assert read(alice, model_id)["datasetId"] == bobs_public


def test_empty_dataset_and_project_ids_are_treated_as_absent(alice) -> None:
    record = read(alice, create_model(alice, datasetId="", projectId=None))
    assert record["datasetId"] is None and record["projectId"] is None


def test_project_id_puts_the_model_in_the_project_and_filters_the_list(alice) -> None:
    project_id = ok(alice.post("/v1/projects", json={"meta": {"name": "p"}}))["id"]
    inside = create_model(alice, projectId=project_id)
    outside = create_model(alice)
    record = read(alice, inside)
    assert record["projectId"] == project_id
    assert record["project"] == {"id": project_id, "name": "p"}
    listed = ok(alice.get("/v1/models", params={"projectId": project_id}))
    assert [m["id"] for m in listed["results"]] == [inside] and listed["total"] == 1
    assert read(alice, outside)["project"] == {}


def test_project_id_must_be_a_project_the_caller_owns(alice, bob) -> None:
    bobs_public = ok(bob.post("/v1/projects", json={"meta": {"name": "b"}, "public": True}))["id"]
    bobs_private = ok(bob.post("/v1/projects", json={"meta": {"name": "c"}}))["id"]
    error(alice.post("/v1/models", json={"projectId": bobs_public}), 403)
    error(alice.post("/v1/models", json={"projectId": bobs_private}), 404)
    error(alice.post("/v1/models", json={"projectId": UNKNOWN_ID}), 404)
    error(alice.post("/v1/models", json={"projectId": "x"}), 422)


def test_server_fields_cannot_be_set_at_create(alice, subtests) -> None:
    for field in SERVER_FIELDS:
        with subtests.test(field=field):
            assert field in error(alice.post("/v1/models", json={field: "x"}), 422)
    assert ok(alice.get("/v1/models"))["total"] == 0


def test_public_at_create_makes_the_model_readable_anonymously(alice, anon) -> None:
    model_id = create_model(alice, public=True)
    assert read(anon, model_id)["public"] is True
    error(alice.post("/v1/models", json={"public": "yes"}), 422)


def test_nested_document_that_is_too_deep_is_refused(alice) -> None:
    deep: dict = {}
    cursor = deep
    for _ in range(10):
        cursor["x"] = {}
        cursor = cursor["x"]
    error(alice.post("/v1/models", json={"meta": deep}), 422)


def test_document_sections_must_be_objects(alice, subtests) -> None:
    for field in ("meta", "config", "lineage", "dataset", "project"):
        with subtests.test(field=field):
            assert field in error(alice.post("/v1/models", json={field: "text"}), 422)
            assert field in error(alice.post("/v1/models", json={field: [1]}), 422)


def test_a_nul_character_in_the_name_does_not_break_the_database(alice) -> None:
    model_id = ok(alice.post("/v1/models", json={"meta": {"name": "a\x00b"}}))["id"]
    assert read(alice, model_id)["meta"]["name"] == "ab"


# ---------------------------------------------------------------- request bodies


NOT_A_JSON_OBJECT = [
    (b'{"meta": {"name": ', JSON, 400),
    (b"[1, 2]", JSON, 400),
    (b'"text"', JSON, 400),
    (b"", JSON, 400),
    (b'{"meta": {"x": NaN}}', JSON, 400),
    (b'{"meta": {"x": 1e999}}', JSON, 400),
    (b'{"meta": {"x": -Infinity}}', JSON, 400),
    (b"\xff\xfe{}", JSON, 400),
    (b'{"meta": {}}', {"content-type": "text/plain"}, 415),
    (b"meta=x", {"content-type": "application/x-www-form-urlencoded"}, 415),
    (b'{"meta": {}}', {}, 415),
]


def test_bodies_that_are_not_a_json_object_are_refused(alice, subtests) -> None:
    model_id = create_model(alice)
    for content, headers, status in NOT_A_JSON_OBJECT:
        for method, path in (("POST", "/v1/models"), ("PATCH", f"/v1/models/{model_id}")):
            with subtests.test(method=method, content=content, headers=headers):
                error(alice.request(method, path, content=content, headers=headers), status)
    assert read(alice, model_id)["meta"] == {"name": "m"}
    assert ok(alice.get("/v1/models"))["total"] == 1


def test_json_with_a_charset_parameter_is_accepted(alice) -> None:
    response = alice.post(
        "/v1/models",
        content=b'{"meta": {"name": "utf"}}',
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert read(alice, ok(response)["id"])["meta"]["name"] == "utf"


# ---------------------------------------------------------------- read


def test_owner_reads_a_private_model_and_others_do_not(alice, bob, anon) -> None:
    model_id = create_model(alice)
    assert read(alice, model_id)["id"] == model_id
    assert "not found" in error(bob.get(f"/v1/models/{model_id}"), 404)
    error(anon.get(f"/v1/models/{model_id}"), 404)


def test_anyone_reads_a_public_model(alice, bob, anon) -> None:
    model_id = create_model(alice, public=True)
    assert read(anon, model_id)["id"] == model_id
    assert read(bob, model_id)["id"] == model_id


def test_unknown_and_malformed_ids_answer_404_on_every_model_route(alice, subtests) -> None:
    create_model(alice)
    for bad_id in (UNKNOWN_ID, *MALFORMED_IDS):
        for method, path, kwargs in model_routes(bad_id):
            with subtests.test(method=method, path=path):
                error(alice.request(method, path, **kwargs), 404)


def test_the_record_carries_links_and_timestamps(alice) -> None:
    model_id = create_model(alice)
    record = read(alice, model_id)
    assert record["url"] == f"http://testserver/models/{model_id}"
    assert record["createdAt"].endswith("Z") and record["updatedAt"].endswith("Z")
    assert record["agents"] == [] and record["online"] is False
    assert record["epoch"] is None and record["map"] is None


# ---------------------------------------------------------------- list


def test_walking_every_page_sees_each_model_exactly_once_newest_first(alice) -> None:
    created = [create_model(alice, meta={"name": f"m{i}"}) for i in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"last_doc_id": cursor} if cursor else {})}
        page = ok(alice.get("/v1/models", params=params))
        assert page["total"] == 7
        seen += [m["id"] for m in page["results"]]
        pages += 1
        cursor = page["lastRecordId"]
        if cursor is None:
            break
        assert cursor == page["results"][-1]["id"]
    assert pages == 3
    assert seen == list(reversed(created))


def test_a_list_that_fits_one_page_has_no_next_cursor(alice) -> None:
    ids = [create_model(alice) for _ in range(3)]
    page = ok(alice.get("/v1/models", params={"limit": 3}))
    assert sorted(m["id"] for m in page["results"]) == sorted(ids)
    assert page["lastRecordId"] is None and page["total"] == 3
    default = ok(alice.get("/v1/models"))
    assert len(default["results"]) == 3


def test_an_empty_list_has_total_zero(alice) -> None:
    assert ok(alice.get("/v1/models")) == {"results": [], "total": 0, "lastRecordId": None}


def test_list_entries_carry_dataset_and_project_keys(alice) -> None:
    create_model(alice, public=True)
    for page in (ok(alice.get("/v1/models")), ok(alice.get("/v1/models?public=True"))):
        assert all("dataset" in m and "project" in m for m in page["results"])


def test_without_public_the_list_holds_only_the_callers_models(alice, bob) -> None:
    mine = create_model(alice)
    theirs = create_model(bob, public=True)
    assert [m["id"] for m in ok(alice.get("/v1/models"))["results"]] == [mine]
    assert [m["id"] for m in ok(bob.get("/v1/models?public=False"))["results"]] == [theirs]


def test_public_true_lists_every_users_public_models_even_anonymously(alice, bob, anon) -> None:
    alice_public = create_model(alice, public=True)
    create_model(alice)
    bob_public = create_model(bob, public=True)
    for client in (alice, bob, anon):
        page = ok(client.get("/v1/models", params={"public": "True"}))
        assert [m["id"] for m in page["results"]] == [bob_public, alice_public]
        assert page["total"] == 2


def test_public_pages_can_be_walked_anonymously(alice, anon) -> None:
    ids = [create_model(alice, public=True) for _ in range(4)]
    first = ok(anon.get("/v1/models", params={"public": "True", "limit": 2}))
    second = ok(
        anon.get(
            "/v1/models",
            params={"public": "True", "limit": 2, "last_doc_id": first["lastRecordId"]},
        )
    )
    walked = [m["id"] for m in first["results"] + second["results"]]
    assert walked == list(reversed(ids)) and second["lastRecordId"] is None


def test_anonymous_list_of_own_models_needs_a_key(anon) -> None:
    assert "key" in error(anon.get("/v1/models"), 401)


def test_bad_list_parameters_answer_422(alice, subtests) -> None:
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"limit": "ten"},
        {"last_doc_id": "short"},
        {"public": "maybe"},
        {"projectId": "x"},
    ):
        with subtests.test(params=params):
            error(alice.get("/v1/models", params=params), 422)


def test_an_unknown_cursor_answers_404(alice) -> None:
    create_model(alice)
    error(alice.get("/v1/models", params={"last_doc_id": UNKNOWN_ID}), 404)


# ---------------------------------------------------------------- PATCH


def test_patch_merges_nested_objects_and_keeps_the_rest(alice) -> None:
    model_id = create_model(alice, meta={"name": "old", "description": "keep me"})
    updated = ok(alice.patch(f"/v1/models/{model_id}", json={"meta": {"name": "new"}}))
    assert updated["meta"] == {"name": "new", "description": "keep me"}
    record = read(alice, model_id)
    assert record["meta"] == {"name": "new", "description": "keep me"}
    assert record["config"] == {"epochs": 3, "imageSize": 64, "batchSize": 4}


def test_patch_of_config_merges_and_updates_train_args(alice) -> None:
    model_id = create_model(alice)
    ok(alice.patch(f"/v1/models/{model_id}", json={"config": {"epochs": "10", "device": "cpu"}}))
    record = read(alice, model_id)
    assert record["config"] == {"epochs": 10, "imageSize": 64, "batchSize": 4, "device": "cpu"}
    assert record["train_args"] == {"epochs": 10, "imgsz": 64, "batch": 4, "device": "cpu"}
    assert record["epochs"] == 10 and record["device"] == "cpu"


def test_patch_with_null_removes_a_key(alice) -> None:
    model_id = create_model(alice, meta={"name": "m", "description": "gone soon"}, extra=1)
    ok(
        alice.patch(
            f"/v1/models/{model_id}",
            json={"meta": {"description": None}, "config": {"batchSize": None}, "extra": None},
        )
    )
    record = read(alice, model_id)
    assert record["meta"] == {"name": "m"}
    assert "batchSize" not in record["config"] and "batch" not in record["train_args"]
    assert record["batch_size"] is None
    assert "extra" not in record


def test_patch_toggles_public(alice, anon) -> None:
    model_id = create_model(alice)
    assert ok(alice.patch(f"/v1/models/{model_id}", json={"public": True}))["public"] is True
    assert read(anon, model_id)["id"] == model_id
    assert ok(alice.patch(f"/v1/models/{model_id}", json={"public": False}))["public"] is False
    error(anon.get(f"/v1/models/{model_id}"), 404)
    ok(alice.patch(f"/v1/models/{model_id}", json={"public": True}))
    for not_a_flag in (None, "yes", 1):
        error(alice.patch(f"/v1/models/{model_id}", json={"public": not_a_flag}), 422)
    assert read(anon, model_id)["public"] is True


def test_patch_of_a_server_field_is_refused_with_422(alice, subtests) -> None:
    model_id = create_model(alice)
    for field in SERVER_FIELDS:
        with subtests.test(field=field):
            message = error(alice.patch(f"/v1/models/{model_id}", json={field: "trained"}), 422)
            assert field in message
    after = read(alice, model_id)
    assert after["status"] == "new" and after["weights"] is None and after["cfg"] == "yolo11n.yaml"


def test_patch_with_an_invalid_config_changes_nothing(alice) -> None:
    model_id = create_model(alice)
    error(alice.patch(f"/v1/models/{model_id}", json={"config": {"epochs": "many"}}), 422)
    assert read(alice, model_id)["config"]["epochs"] == 3


def test_patch_sets_and_clears_dataset_and_project_references(alice) -> None:
    dataset_id = create_dataset(alice)
    project_id = ok(alice.post("/v1/projects", json={"meta": {"name": "p"}}))["id"]
    model_id = create_model(alice)
    ok(
        alice.patch(
            f"/v1/models/{model_id}", json={"datasetId": dataset_id, "projectId": project_id}
        )
    )
    record = read(alice, model_id)
    assert (record["datasetId"], record["projectId"]) == (dataset_id, project_id)
    assert record["train_args"]["data"] == record["data"] is not None
    ok(alice.patch(f"/v1/models/{model_id}", json={"datasetId": None, "projectId": None}))
    record = read(alice, model_id)
    assert (record["datasetId"], record["projectId"]) == (None, None)
    assert "data" not in record["train_args"]
    error(alice.patch(f"/v1/models/{model_id}", json={"datasetId": UNKNOWN_ID}), 404)


def test_renaming_a_model_still_works_after_its_parent_was_deleted(alice, tmp_path) -> None:
    parent_id = create_model(alice)
    dataset_id = create_dataset(alice)
    child_id = create_model(alice, lineage={"parent": {"id": parent_id}}, datasetId=dataset_id)
    ok(alice.delete(f"/v1/models/{parent_id}"))
    ok(alice.delete(f"/v1/datasets/{dataset_id}"))
    renamed = ok(alice.patch(f"/v1/models/{child_id}", json={"meta": {"name": "renamed"}}))
    assert renamed["meta"]["name"] == "renamed"
    error(
        alice.patch(f"/v1/models/{child_id}", json={"lineage": {"parent": {"id": parent_id}}}), 404
    )


def test_patch_answers_the_updated_record(alice) -> None:
    model_id = create_model(alice)
    updated = ok(alice.patch(f"/v1/models/{model_id}", json={"meta": {"name": "fresh"}}))
    assert updated["id"] == model_id and updated["meta"]["name"] == "fresh"
    assert updated["updatedAt"] >= updated["createdAt"]


# ---------------------------------------------------------------- delete


def test_soft_delete_hides_the_model_but_keeps_its_blobs(alice, settings, tmp_path) -> None:
    model_id = create_model(alice)
    keep = create_model(alice)
    path, _ = weights_file(tmp_path / "last.pt")
    ok(upload_weights(alice, model_id, path))
    resume = read(alice, model_id)["resume"]
    deleted = ok(alice.delete(f"/v1/models/{model_id}"))
    assert deleted == {"id": model_id, "hard": False}
    error(alice.get(f"/v1/models/{model_id}"), 404)
    page = ok(alice.get("/v1/models"))
    assert [m["id"] for m in page["results"]] == [keep] and page["total"] == 1
    assert len(stored_blobs(settings.data_dir)) == 1
    error(alice.get(resume), 404)
    error(alice.delete(f"/v1/models/{model_id}"), 404)


def test_soft_delete_with_hard_false_as_hub_sdk_sends_it(alice) -> None:
    model_id = create_model(alice)
    assert ok(alice.delete(f"/v1/models/{model_id}?hard=False"))["hard"] is False
    error(alice.get(f"/v1/models/{model_id}"), 404)


def test_hard_delete_removes_the_model_its_metrics_and_its_blobs(alice, settings, tmp_path) -> None:
    model_id = create_model(alice)
    other = create_model(alice)
    ok(alice.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(0)}))
    last, _ = weights_file(tmp_path / "last.pt")
    best, _ = weights_file(tmp_path / "best.pt")
    other_file, _ = weights_file(tmp_path / "other.pt")
    ok(upload_weights(alice, model_id, last))
    ok(upload_weights(alice, model_id, best, final=True))
    ok(upload_weights(alice, other, other_file))
    weights = read(alice, model_id)["weights"]
    assert len(stored_blobs(settings.data_dir)) == 3

    assert ok(alice.delete(f"/v1/models/{model_id}?hard=True"))["hard"] is True
    error(alice.get(f"/v1/models/{model_id}"), 404)
    error(alice.get(f"/v1/models/{model_id}/metrics"), 404)
    error(alice.get(weights), 404)
    remaining = stored_blobs(settings.data_dir)
    assert len(remaining) == 1 and other in str(remaining[0])
    assert ok(alice.get("/v1/models"))["total"] == 1


def test_bad_hard_parameter_answers_422(alice) -> None:
    model_id = create_model(alice)
    error(alice.delete(f"/v1/models/{model_id}?hard=maybe"), 422)
    assert read(alice, model_id)["id"] == model_id


# ---------------------------------------------------------------- who may do what


def test_bob_gets_404_on_every_route_of_alices_private_model(alice, bob) -> None:
    model_id = create_model(alice)
    for method, path, kwargs in model_routes(model_id):
        error(bob.request(method, path, **kwargs), 404)
    assert read(alice, model_id)["meta"]["name"] == "m"


def test_bob_gets_403_when_writing_alices_public_model(alice, bob) -> None:
    model_id = create_model(alice, public=True)
    assert "read-only" in error(
        bob.patch(f"/v1/models/{model_id}", json={"meta": {"name": "x"}}), 403
    )
    error(bob.delete(f"/v1/models/{model_id}"), 403)
    error(bob.delete(f"/v1/models/{model_id}?hard=True"), 403)
    assert read(bob, model_id)["meta"]["name"] == "m"


def test_anonymous_writes_answer_401(alice, anon) -> None:
    model_id = create_model(alice, public=True)
    assert "API key" in error(anon.post("/v1/models", json={"meta": {"name": "x"}}), 401)
    error(anon.patch(f"/v1/models/{model_id}", json={"meta": {"name": "x"}}), 401)
    error(anon.delete(f"/v1/models/{model_id}"), 401)
    assert read(anon, model_id)["meta"]["name"] == "m"


def test_an_invalid_key_answers_401_even_on_public_reads(alice, anon) -> None:
    model_id = create_model(alice, public=True)
    for key in ("ul" + "0" * 40, "ul_" + "0" * 40, "not-a-key", "x" * 5000):
        error(anon.get(f"/v1/models/{model_id}", headers={"x-api-key": key}), 401)
        error(anon.get("/v1/models?public=True", headers={"authorization": f"Bearer {key}"}), 401)


def test_a_bearer_token_works_like_the_x_api_key_header(anon, users) -> None:
    headers = {"authorization": f"Bearer {users.alice.key}"}
    model_id = ok(anon.post("/v1/models", json={}, headers=headers))["id"]
    assert ok(anon.get(f"/v1/models/{model_id}", headers=headers))["id"] == model_id


def test_a_revoked_key_answers_401_on_every_model_route(app, alice, bob, users) -> None:
    model_id = create_model(bob, public=True)
    revoke_key(app, users.bob)
    assert "revoked" in error(bob.post("/v1/models", json={}), 401)
    error(bob.get("/v1/models"), 401)
    error(bob.get("/v1/models?public=True"), 401)
    for method, path, kwargs in model_routes(model_id):
        error(bob.request(method, path, **kwargs), 401)
    assert read(alice, model_id)["id"] == model_id
