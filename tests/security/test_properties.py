"""Property-based tests (hypothesis) of everything a JSON body can carry, through the real app.

Whatever JSON arrives (odd text, lone surrogates, huge or non-finite numbers, deep nesting, wrong
types), each write answers a JSON error below 500 or succeeds, and every read afterwards still
works: nothing stored can break a later answer. Runs from a fixed seed (`derandomize`), so a
failure replays; `TRAINHUB_HYPOTHESIS_EXAMPLES` raises the number of examples per endpoint.
"""

import json
import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import Users, create_model
from tests.testclient import TestClient
from trainhub.protocol.metrics import parse_epoch_metrics
from trainhub.server.bodies import decode_json
from trainhub.server.errors import BadRequestError

EXAMPLES = int(os.environ.get("TRAINHUB_HYPOTHESIS_EXAMPLES", "60"))
PROPERTIES = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# text as clients send it: half plain, half hostile (lone surrogates, NUL, odd digits, any
# code point); surrogates are too rare among all code points to be found otherwise
hostile = st.one_of(
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.sampled_from("\x00\ufeff\u202e\u00b2\u0663\uff19"),
    st.characters(codec=None, exclude_categories=()),
)
text = st.one_of(st.text(max_size=20), st.text(hostile, max_size=20))
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
KNOWN_KEYS = ["meta", "config", "dataset", "lineage", "datasetId", "projectId", "public", "name"]
documents = st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), text), values, max_size=6)


def encode(value: Any) -> bytes:
    """Encode like a hostile client: NaN/Infinity literals, surrogate escapes kept as escapes."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def assert_clean(response: Any) -> None:
    """A write answered with success or a JSON ErrorBody below 500."""
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert body["success"] is False and body["message"], body


@pytest.fixture
def reads(alice: TestClient, anon: TestClient, users: Users) -> Any:
    """A check that every kind of read still answers 200."""
    model_id = create_model(alice, public=True)

    def check() -> None:
        for client in (alice, anon):
            for path in ("/v1/models?public=true", f"/v1/models/{model_id}/metrics"):
                assert client.get(path).status_code == 200, path
        for path in ("/v1/models", "/v1/datasets", "/v1/projects", "/v1/keys"):
            assert alice.get(path).status_code == 200, path

    return model_id, check


POST_JSON = {"content-type": "application/json"}


@PROPERTIES
@given(body=documents)
def test_any_model_document_is_stored_or_refused_cleanly(alice, reads, body) -> None:
    model_id, check = reads
    for method, path in (("POST", "/v1/models"), ("PATCH", f"/v1/models/{model_id}")):
        assert_clean(alice.request(method, path, content=encode(body), headers=POST_JSON))
    check()


@PROPERTIES
@given(body=documents, kind=st.sampled_from(["datasets", "projects"]))
def test_any_dataset_or_project_document_is_stored_or_refused_cleanly(
    alice, reads, body, kind
) -> None:
    _, check = reads
    assert_clean(alice.post(f"/v1/{kind}", content=encode(body), headers=POST_JSON))
    check()


epochs = st.one_of(st.integers(min_value=-5, max_value=2_000_000).map(str), text)
epoch_values = st.one_of(
    st.dictionaries(text, numbers, max_size=5).map(lambda d: json.dumps(d, allow_nan=True)),
    st.dictionaries(text, numbers, max_size=5),
    values,
)


@PROPERTIES
@given(metrics=st.dictionaries(epochs, epoch_values, max_size=4), kind=st.just("metrics"))
def test_any_metrics_upload_is_stored_or_refused_cleanly(alice, reads, metrics, kind) -> None:
    model_id, check = reads
    body = encode({"type": kind, "metrics": metrics})
    assert_clean(alice.post(f"/v1/models/{model_id}", content=body, headers=POST_JSON))
    check()


@PROPERTIES
@given(
    beat=st.fixed_dictionaries(
        {},
        optional={
            "agent": st.one_of(text, values),
            "agentId": st.one_of(st.none(), text, values),
            "interval": st.one_of(numbers, values),
            "state": st.one_of(st.sampled_from(["running", "finished", "failed"]), values),
        },
    )
)
def test_any_heartbeat_is_recorded_or_refused_cleanly(alice, reads, beat) -> None:
    model_id, check = reads
    path = f"/v1/agent/heartbeat/models/{model_id}"
    assert_clean(alice.post(path, content=encode(beat), headers=POST_JSON))
    assert alice.get(f"/v1/models/{model_id}").status_code == 200
    check()


@PROPERTIES
@given(body=st.one_of(documents, values))
def test_any_key_or_reset_request_is_answered_cleanly(alice, reads, body) -> None:
    _, check = reads
    assert_clean(alice.post("/v1/keys", content=encode(body), headers=POST_JSON))
    assert_clean(alice.post("/model-reset", content=encode(body), headers=POST_JSON))
    check()


@settings(max_examples=EXAMPLES * 5, derandomize=True, deadline=None)
@given(value=values)
def test_the_gate_passes_only_text_that_encodes_and_numbers_that_are_finite(value) -> None:
    try:
        parsed = decode_json(encode(value))
    except BadRequestError:
        return
    assert json.dumps(parsed, allow_nan=False, ensure_ascii=False).encode("utf-8")


@settings(max_examples=EXAMPLES * 5, derandomize=True, deadline=None)
@given(raw=epoch_values)
def test_parsed_metrics_are_finite_numbers_under_valid_names(raw) -> None:
    try:
        parsed = parse_epoch_metrics(raw)
    except (ValueError, TypeError, OverflowError):
        return
    for name, number in parsed.items():
        name.encode("utf-8")
        assert number is None or (isinstance(number, int | float) and math.isfinite(number))


EVENT_KEYS = [
    "epoch",
    "metrics",
    "system",
    "modelInfo",
    "fitness",
    "chunkId",
    "content",
    "lineCount",
    "progress",
    "modelPath",
    "runId",
    "results",
    "classNames",
    "plots",
    "trainArgs",
    "epochs",
    "environment",
]
event_data = st.dictionaries(st.one_of(st.sampled_from(EVENT_KEYS), text), values, max_size=6)
# shaped like the real events, with hostile values where the server reads them
shaped_events = st.one_of(
    st.fixed_dictionaries(
        {"epoch": st.integers(0, 50)},
        optional={
            "metrics": st.dictionaries(text, values, max_size=5),
            "system": st.one_of(values, st.dictionaries(text, values, max_size=5)),
            "modelInfo": st.dictionaries(text, values, max_size=3),
        },
    ),
    st.fixed_dictionaries(
        {"chunkId": st.integers(0, 2**62)},
        optional={"content": text, "lineCount": st.integers(0, 9), "progress": values},
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "results": st.dictionaries(st.one_of(st.just("metrics"), text), values),
            "classNames": st.lists(values, max_size=3),
            "plots": st.lists(values, max_size=3),
            "runId": st.integers(0, 10),
        },
    ),
    st.fixed_dictionaries(
        {"modelPath": st.one_of(text, st.just("platform-uploads/AAAAAAAAAAAAAAAAAAAA"))}
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "trainArgs": st.dictionaries(text, values, max_size=4),
            "epochs": st.integers(0, 10),
            "environment": st.dictionaries(text, values, max_size=4),
        },
    ),
)


@pytest.fixture
def platform_run(app, users: Users, alice: TestClient) -> Any:
    """A model whose ultralytics 8.4 run started, and a check that its reads still work."""
    from tests.platform import PlatformClient

    trainer = PlatformClient(app, users.alice.key)
    run = trainer.start()

    def check() -> None:
        for path in ("", "/metrics", "/runs", "/console"):
            answer = alice.get(f"/v1/models/{run.model_id}{path}")
            assert answer.status_code == 200, (path, answer.text)

    return trainer, run.model_id, check


@PROPERTIES
@given(
    event=st.one_of(
        st.sampled_from(
            [
                "training_started",
                "epoch_end",
                "console_output",
                "checkpoint_saved",
                "training_complete",
                "system_metrics",
            ]
        ),
        text,
    ),
    data=st.one_of(shaped_events, event_data, values),
    identity=st.sampled_from(["model", "project", "none"]),
)
def test_any_platform_event_is_recorded_or_refused_cleanly(
    platform_run, event, data, identity
) -> None:
    trainer, model_id, check = platform_run
    body: dict[str, Any] = {"event": event, "data": data}
    if identity == "model":
        body["modelId"] = model_id
    elif identity == "project":
        body.update(project="alice/props", name="run")
    response = trainer.http.post(
        "/api/webhooks/training/metrics", content=encode(body), headers=POST_JSON
    )
    assert_clean(response)
    if response.status_code == 200:
        assert isinstance(response.json(), dict) and response.json()["received"] is True
    check()
