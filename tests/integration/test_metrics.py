"""Training metrics over HTTP: upsert by epoch, merge, non-finite values, transposed read.

docs/protocol/hub-v1.md §5.8-§5.9 and §16.3; docs/security.md §2.5 (NaN must never poison a read).
"""

import json
import math

from tests.factories import create_model, epoch_metrics, error, ok, revoke_key

JSON = {"content-type": "application/json"}
UNKNOWN_ID = "A" * 20
DETECT_EPOCH_0 = {
    "train/box_loss": 1.42937,
    "train/cls_loss": 1.46604,
    "train/dfl_loss": 1.1,
    "metrics/precision(B)": 0.5,
    "metrics/recall(B)": 0.25,
    "metrics/mAP50(B)": 0.125,
    "metrics/mAP50-95(B)": 0.0625,
    "val/box_loss": 1.3,
    "val/cls_loss": 1.2,
    "val/dfl_loss": 1.0,
    "model/parameters": 2590620,
    "model/GFLOPs": 6.448,
    "model/speed_PyTorch(ms)": 12.345,
}


def upload(client, model_id: str, metrics: dict) -> dict:
    return ok(client.post(f"/v1/models/{model_id}", json={"type": "metrics", "metrics": metrics}))


def upload_raw(client, model_id: str, body: bytes):
    return client.post(f"/v1/models/{model_id}", content=body, headers=JSON)


def series(client, model_id: str) -> dict[str, dict]:
    """Return the metrics read-back as {name: {epoch: value}}, checking it is strict JSON."""
    response = client.get(f"/v1/models/{model_id}/metrics")
    assert response.status_code == 200, response.text
    body = json.loads(response.text, parse_constant=reject_constant)
    assert body["success"] is True
    names = [entry["meta"]["name"] for entry in body["data"]]
    assert names == sorted(names) and len(names) == len(set(names))
    return {entry["meta"]["name"]: entry["data"] for entry in body["data"]}


def reject_constant(name: str):
    raise AssertionError(f"the response holds the non-standard JSON constant {name}")


# ---------------------------------------------------------------- upload and read back


def test_one_epoch_reads_back_transposed_per_metric(alice) -> None:
    model_id = create_model(alice)
    stored = upload(alice, model_id, {"0": json.dumps(DETECT_EPOCH_0)})
    assert stored == {"epochs": [0]}
    read = series(alice, model_id)
    assert read == {name: {"0": value} for name, value in DETECT_EPOCH_0.items()}
    assert isinstance(read["model/parameters"]["0"], int)


def test_the_transposed_read_has_the_documented_shape(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, {"0": '{"metrics/mAP50(B)": 0.12}', "1": '{"metrics/mAP50(B)": 0.25}'})
    data = ok(alice.get(f"/v1/models/{model_id}/metrics"))
    assert data == [{"meta": {"name": "metrics/mAP50(B)"}, "data": {"0": 0.12, "1": 0.25}}]


def test_many_epochs_in_one_request_are_all_stored(alice) -> None:
    model_id = create_model(alice)
    metrics = {str(e): json.dumps({"train/box_loss": 2.0 - e / 100, "lr": e}) for e in range(150)}
    assert upload(alice, model_id, metrics)["epochs"] == list(range(150))
    read = series(alice, model_id)
    assert read["train/box_loss"] == {str(e): 2.0 - e / 100 for e in range(150)}
    assert read["lr"] == {str(e): e for e in range(150)}
    assert ok(alice.get(f"/v1/models/{model_id}"))["epoch"] == 149


def test_epochs_may_arrive_out_of_order_and_in_separate_requests(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, epoch_metrics(2, loss=0.5))
    upload(alice, model_id, {**epoch_metrics(0, loss=1.5), **epoch_metrics(1, loss=1.0)})
    assert series(alice, model_id) == {"loss": {"0": 1.5, "1": 1.0, "2": 0.5}}
    assert ok(alice.get(f"/v1/models/{model_id}"))["epoch"] == 2


def test_metrics_of_a_model_with_none_are_an_empty_list(alice) -> None:
    model_id = create_model(alice)
    assert ok(alice.get(f"/v1/models/{model_id}/metrics")) == []


def test_metrics_may_be_sent_as_objects_instead_of_strings(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, {"0": {"loss": 1.0}, "1": '{"loss": 0.5}'})
    assert series(alice, model_id) == {"loss": {"0": 1.0, "1": 0.5}}


def test_the_type_field_may_be_left_out(alice) -> None:
    model_id = create_model(alice)
    ok(alice.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(0, loss=1.0)}))
    assert series(alice, model_id) == {"loss": {"0": 1.0}}


def test_first_metrics_move_a_new_model_to_training(alice) -> None:
    model_id = create_model(alice)
    assert ok(alice.get(f"/v1/models/{model_id}"))["status"] == "new"
    upload(alice, model_id, epoch_metrics(0))
    assert ok(alice.get(f"/v1/models/{model_id}"))["status"] == "training"


# --------------------------------------------- upsert and merge (docs/protocol/hub-v1.md §16.3)


def test_resent_epoch_merges_into_stored_metrics(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, {"4": json.dumps({"a": 1.0, "val/box_loss": 2.0, "c": 3.0})})
    upload(alice, model_id, {"4": json.dumps({"a": 10.0, "b": 20.0})})
    assert series(alice, model_id) == {
        "a": {"4": 10.0},
        "b": {"4": 20.0},
        "c": {"4": 3.0},
        "val/box_loss": {"4": 2.0},
    }


def test_final_resend_without_val_losses_keeps_them(alice) -> None:
    model_id = create_model(alice)
    final_epoch = {k: v for k, v in DETECT_EPOCH_0.items() if not k.startswith("val/")}
    upload(alice, model_id, {"0": json.dumps(DETECT_EPOCH_0)})
    upload(alice, model_id, {"0": json.dumps({**final_epoch, "metrics/mAP50(B)": 0.75})})
    read = series(alice, model_id)
    assert read["metrics/mAP50(B)"] == {"0": 0.75}
    assert read["val/box_loss"] == {"0": 1.3}
    assert set(read) == set(DETECT_EPOCH_0)


def test_sending_the_same_request_twice_changes_nothing(alice) -> None:
    model_id = create_model(alice)
    metrics = {"0": json.dumps({"loss": 1.0}), "1": json.dumps({"loss": 0.5})}
    upload(alice, model_id, metrics)
    first = series(alice, model_id)
    upload(alice, model_id, metrics)
    assert series(alice, model_id) == first == {"loss": {"0": 1.0, "1": 0.5}}


def test_a_resent_value_can_become_null_and_back(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, {"0": '{"loss": 1.0}'})
    upload(alice, model_id, {"0": '{"loss": NaN}'})
    assert series(alice, model_id) == {"loss": {"0": None}}
    upload(alice, model_id, {"0": '{"loss": 0.5}'})
    assert series(alice, model_id) == {"loss": {"0": 0.5}}


def test_metrics_of_one_model_never_mix_with_another(alice) -> None:
    first, second = create_model(alice), create_model(alice)
    upload(alice, first, {"0": '{"loss": 1.0}'})
    upload(alice, second, {"0": '{"loss": 2.0}'})
    assert series(alice, first) == {"loss": {"0": 1.0}}
    assert series(alice, second) == {"loss": {"0": 2.0}}


# ---------------------------------------------------------------- non-finite values


def test_nan_and_infinity_in_the_json_strings_read_back_as_null(alice) -> None:
    model_id = create_model(alice)
    sent = {
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "fine": 0.5,
        "null": None,
    }
    upload(alice, model_id, {"0": json.dumps(sent), "1": '{"big": 1e999, "small": -1e999}'})
    assert series(alice, model_id) == {
        "nan": {"0": None},
        "inf": {"0": None},
        "-inf": {"0": None},
        "fine": {"0": 0.5},
        "null": {"0": None},
        "big": {"1": None},
        "small": {"1": None},
    }
    record = alice.get(f"/v1/models/{model_id}")
    json.loads(record.text, parse_constant=reject_constant)


def test_bare_nan_and_infinity_literals_in_the_body_read_back_as_null(alice) -> None:
    model_id = create_model(alice)
    body = (
        b'{"type": "metrics", "metrics": {"0": {"loss": NaN, "gain": Infinity, '
        b'"drop": -Infinity, "big": 1e999, "ok": 1.5}}}'
    )
    ok(upload_raw(alice, model_id, body))
    assert series(alice, model_id) == {
        "big": {"0": None},
        "drop": {"0": None},
        "gain": {"0": None},
        "loss": {"0": None},
        "ok": {"0": 1.5},
    }


def test_huge_integers_are_kept_as_floats_and_absurd_ones_refused(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, {"0": json.dumps({"params": 2**60, "small": 2**53})})
    assert series(alice, model_id) == {"params": {"0": float(2**60)}, "small": {"0": 2**53}}
    absurd = '{"0": "{\\"params\\": 1' + "0" * 400 + '}"}'
    error(upload_raw(alice, model_id, b'{"metrics": ' + absurd.encode() + b"}"), 422)
    # in the body itself the JSON gate refuses it before the metrics are looked at
    error(upload_raw(alice, model_id, b'{"metrics": {"0": {"p": 1' + b"0" * 400 + b"}}}"), 400)
    assert series(alice, model_id)["params"] == {"0": float(2**60)}


# ---------------------------------------------------------------- refused uploads


NON_NUMERIC_VALUES = ['"fast"', "true", "false", "[1, 2]", '{"x": 1}', '"NaN"']


def test_non_numeric_metric_values_are_refused_with_422(alice, subtests) -> None:
    model_id = create_model(alice)
    for value in NON_NUMERIC_VALUES:
        with subtests.test(value=value):
            metrics = {"0": '{"fine": 1.0}', "1": '{"loss": ' + value + "}"}
            response = alice.post(f"/v1/models/{model_id}", json={"metrics": metrics})
            assert "bad metrics" in error(response, 422)
    assert series(alice, model_id) == {}
    assert ok(alice.get(f"/v1/models/{model_id}"))["status"] == "new"


BAD_EPOCH_KEYS = ["-1", "a", "1.5", "", " 1", "1e3", "0x1", "1000001", "1" * 5000]


def test_bad_epoch_keys_are_refused_with_422(alice, subtests) -> None:
    model_id = create_model(alice)
    for key in BAD_EPOCH_KEYS:
        with subtests.test(key=key[:20]):
            metrics = {"0": '{"loss": 1.0}', key: '{"loss": 1.0}'}
            message = error(alice.post(f"/v1/models/{model_id}", json={"metrics": metrics}), 422)
            assert "epoch" in message or len(key) > 4300
    assert series(alice, model_id) == {}


def test_epoch_keys_with_non_ascii_digits_are_refused_with_422(alice, subtests) -> None:
    # these pass str.isdigit(); the Arabic-Indic and fullwidth threes even parse as int 3, so a
    # request holding both "3" and one of them would silently write epoch 3 twice
    model_id = create_model(alice)
    for key in ("\u00b2", "\u0663", "\uff13"):  # superscript two, Arabic-Indic and fullwidth three
        with subtests.test(key=key):
            metrics = {"0": '{"loss": 1.0}', key: '{"loss": 2.0}'}
            error(alice.post(f"/v1/models/{model_id}", json={"metrics": metrics}), 422)
    assert series(alice, model_id) == {}


def test_the_largest_epoch_number_is_accepted(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, {"1000000": '{"loss": 1.0}'})
    assert series(alice, model_id) == {"loss": {"1000000": 1.0}}


NOT_METRICS_OBJECTS = [
    '"not json"',
    '"[1, 2]"',
    '"1.5"',
    '"null"',
    "1.5",
    "null",
    "[1]",
    '"{\\"loss\\": 1.0"',
]


def test_an_epoch_that_is_not_a_metrics_object_is_refused_with_422(alice, subtests) -> None:
    model_id = create_model(alice)
    for epoch_value in NOT_METRICS_OBJECTS:
        with subtests.test(epoch_value=epoch_value):
            body = '{"metrics": {"0": ' + epoch_value + "}}"
            error(upload_raw(alice, model_id, body.encode()), 422)
    assert series(alice, model_id) == {}


WITHOUT_USABLE_METRICS = [
    {"type": "weights", "metrics": {"0": "{}"}},
    {"type": "metrics"},
    {"type": "metrics", "metrics": {}},
    {"type": "metrics", "metrics": "{}"},
    {"type": "metrics", "metrics": ["{}"]},
    {"type": "metrics", "metrics": None},
]


def test_a_body_without_usable_metrics_is_refused_with_422(alice, subtests) -> None:
    model_id = create_model(alice)
    for body in WITHOUT_USABLE_METRICS:
        with subtests.test(body=body):
            error(alice.post(f"/v1/models/{model_id}", json=body), 422)
    assert ok(alice.get(f"/v1/models/{model_id}"))["status"] == "new"


def test_metric_names_and_counts_are_bounded(alice) -> None:
    model_id = create_model(alice)
    too_long = json.dumps({"x" * 201: 1.0})
    error(alice.post(f"/v1/models/{model_id}", json={"metrics": {"0": too_long}}), 422)
    empty_name = json.dumps({"": 1.0})
    error(alice.post(f"/v1/models/{model_id}", json={"metrics": {"0": empty_name}}), 422)
    too_many = json.dumps({f"m{i}": 1.0 for i in range(1001)})
    error(alice.post(f"/v1/models/{model_id}", json={"metrics": {"0": too_many}}), 422)
    assert series(alice, model_id) == {}


NOT_A_JSON_OBJECT = [
    (b'{"metrics": {"0": "{}"}', JSON, 400),
    (b"[1]", JSON, 400),
    (b"", JSON, 400),
    (b"null", JSON, 400),
    (b'{"metrics": {"0": "{\\"loss\\": 1}"}}', {"content-type": "text/plain"}, 415),
    (b"metrics=1", {"content-type": "application/x-www-form-urlencoded"}, 415),
]


def test_bodies_that_are_not_a_json_object_are_refused(alice, subtests) -> None:
    model_id = create_model(alice)
    for content, headers, status in NOT_A_JSON_OBJECT:
        with subtests.test(content=content, headers=headers):
            response = alice.post(f"/v1/models/{model_id}", content=content, headers=headers)
            error(response, status)
    assert series(alice, model_id) == {}


# ---------------------------------------------------------------- who may do what


def test_unknown_and_malformed_model_ids_answer_404(alice) -> None:
    for bad_id in (UNKNOWN_ID, "short", "B" * 21, "abc-def_ghi.jkl-mnop"):
        error(alice.post(f"/v1/models/{bad_id}", json={"metrics": epoch_metrics(0)}), 404)
        error(alice.get(f"/v1/models/{bad_id}/metrics"), 404)


def test_bob_gets_404_for_alices_private_model_metrics(alice, bob) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, epoch_metrics(0, loss=1.0))
    error(bob.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(0, loss=9.0)}), 404)
    error(bob.get(f"/v1/models/{model_id}/metrics"), 404)
    assert series(alice, model_id) == {"loss": {"0": 1.0}}


def test_bob_reads_but_cannot_write_alices_public_model_metrics(alice, bob) -> None:
    model_id = create_model(alice, public=True)
    upload(alice, model_id, epoch_metrics(0, loss=1.0))
    assert "read-only" in error(
        bob.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(0, loss=9.0)}), 403
    )
    assert series(bob, model_id) == {"loss": {"0": 1.0}}


def test_anonymous_callers_read_public_metrics_but_cannot_write(alice, anon) -> None:
    public_id = create_model(alice, public=True)
    private_id = create_model(alice)
    upload(alice, public_id, epoch_metrics(0, loss=1.0))
    assert series(anon, public_id) == {"loss": {"0": 1.0}}
    error(anon.get(f"/v1/models/{private_id}/metrics"), 404)
    for model_id in (public_id, private_id):
        error(anon.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(1)}), 401)
    assert series(alice, public_id) == {"loss": {"0": 1.0}}


def test_a_revoked_key_answers_401_for_metrics(app, bob, users) -> None:
    model_id = create_model(bob, public=True)
    revoke_key(app, users.bob)
    error(bob.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(0)}), 401)
    error(bob.get(f"/v1/models/{model_id}/metrics"), 401)


def test_metrics_of_a_deleted_model_are_gone(alice) -> None:
    model_id = create_model(alice)
    upload(alice, model_id, epoch_metrics(0))
    ok(alice.delete(f"/v1/models/{model_id}"))
    error(alice.get(f"/v1/models/{model_id}/metrics"), 404)
    error(alice.post(f"/v1/models/{model_id}", json={"metrics": epoch_metrics(1)}), 404)
