"""The unchanged hub-sdk 0.0.25 client against a live trainhub server.

See docs/protocol/hub-v1.md §13.8.

Every hub-sdk call runs in a subprocess (see conftest.py); plain httpx/urllib calls from the test
process check what hub-sdk cannot see (statuses and error bodies, which hub-sdk swallows).
"""

import math
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from tests.compat.conftest import Runner, dump, tail
from tests.compat.hubsdk_scenarios import build_detect_zip, fetch, sha256_file, write_png
from tests.servers import RunningServer, start_server

pytestmark = [pytest.mark.compat, pytest.mark.e2e]

AGENT = "python-3.11.0-local"
FILE_NAME = re.compile(r".*\.[A-Za-z][A-Za-z0-9]{0,3}$")  # best.pt, coco8.zip, x-1234-best.pt
TRAIN_ARG_KEYS = {"data", "epochs", "imgsz", "batch", "patience", "device", "cache"}


# ------------------------------------------------------------------------------------------------
# helpers


def explain(hub: RunningServer, *items: Any) -> str:
    """An assertion message: the given items (responses rendered) and the server's log."""
    parts = []
    for item in items:
        if isinstance(item, httpx.Response):
            request = item.request
            item = f"{request.method} {request.url} -> {item.status_code}\n{item.text[:3000]}"
        parts.append(item if isinstance(item, str) else dump(item))
    parts.append(f"--- server log ---\n{tail(hub.log())}")
    return "\n".join(parts)


def api(hub: RunningServer, key: str | None) -> httpx.Client:
    """An httpx client for `hub`, authenticated with `key` (anonymous when None)."""
    headers = {"x-api-key": key} if key else {}
    return httpx.Client(base_url=hub.url, headers=headers, timeout=60)


def is_id(value: Any) -> bool:
    """True for a 20-character alphanumeric id."""
    return isinstance(value, str) and len(value) == 20 and value.isalnum() and value.isascii()


def is_2xx(code: int | None) -> bool:
    return code is not None and 200 <= code < 300


def error_json(response: httpx.Response) -> dict[str, Any]:
    """The body of an error answer, which must be `{"success": false, "message": ...}`."""
    body = response.json()
    assert isinstance(body, dict)
    assert body.get("success") is False
    assert isinstance(body.get("message"), str)
    assert body["message"]
    return body


def user_of(hub: RunningServer, name: str) -> dict[str, Any]:
    """What `POST /v1/auth` answers for a user's key: `{"userId", "name"}`."""
    with api(hub, hub.keys[name]) as http:
        answer = http.post("/v1/auth")
    body = answer.json()
    assert answer.status_code == 200, explain(hub, answer)
    assert body.get("success") is True, explain(hub, answer)
    return dict(body["data"])


def create_model_http(hub: RunningServer, key: str, name: str, **extra: Any) -> str:
    """Create a model with plain httpx and return its id."""
    with api(hub, key) as http:
        answer = http.post("/v1/models", json={"meta": {"name": name}, **extra})
    assert is_2xx(answer.status_code), explain(hub, answer)
    model_id = answer.json()["data"]["id"]
    assert is_id(model_id), explain(hub, answer)
    return str(model_id)


def tamper(url: str, known: set[str]) -> str:
    """Flip one character of the capability token in a download URL.

    The token is the longest path segment or query value that is not a file name (`*.pt`,
    `*.zip`) and not one of the `known` ids, so both a `?token=` query and a token in the path
    (docs/protocol/hub-v1.md §16.1) work.
    """
    parts = urlsplit(url)
    segments = parts.path.split("/")
    query = parse_qsl(parts.query, keep_blank_values=True)
    candidates = [
        ("path", i, s)
        for i, s in enumerate(segments)
        if s and not FILE_NAME.match(s) and s not in known and s != "files"
    ]
    candidates += [("query", i, v) for i, (_, v) in enumerate(query) if v not in known]
    assert candidates, f"no token-like part in download URL {url}"
    where, index, token = max(candidates, key=lambda c: len(c[2]))
    # flip a letter or digit in the middle (a trailing base64 character may only carry padding)
    middle = next(
        i for i in [*range(len(token) // 2, len(token)), *range(len(token))] if token[i].isalnum()
    )
    flipped = token[:middle] + ("b" if token[middle] == "a" else "a") + token[middle + 1 :]
    if where == "path":
        segments[index] = flipped
        return urlunsplit(parts._replace(path="/".join(segments)))
    query[index] = (query[index][0], flipped)
    return urlunsplit(parts._replace(query=urlencode(query)))


def find_value(record: Any, wanted: str) -> list[str]:
    """JSON paths at which the string `wanted` occurs in `record`."""
    found: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]")
        elif value == wanted:
            found.append(path or ".")

    walk(record, "")
    return found


# ------------------------------------------------------------------------------------------------
# 1. authentication


def test_good_keys_authenticate_and_bad_keys_do_not(hub: RunningServer, scenario: Runner) -> None:
    alice = hub.keys["alice"]
    keys = {
        "alice": alice,
        "bob": hub.keys["bob"],
        "alice_with_underscore": "ul_" + alice[2:],  # docs/protocol/hub-v1.md §16.8: same key
        "unknown": "ul" + "0" * 40,
        "wrong_shape": "not-a-trainhub-key",
    }
    run = scenario("auth", keys=keys)
    expected = {
        "alice": True,
        "bob": True,
        "alice_with_underscore": True,
        "unknown": False,
        "wrong_shape": False,
    }
    got = {label: outcome.get("authenticated") for label, outcome in run.result.items()}
    assert got == expected, run.why()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"x-api-key": "ul" + "0" * 40}, id="unknown-key"),
        pytest.param({"x-api-key": "not-a-trainhub-key"}, id="wrong-shape"),
        pytest.param({"authorization": "Bearer not-a-token"}, id="bad-bearer"),
        pytest.param({}, id="no-credentials"),
    ],
)
def test_bad_key_is_refused_with_json(hub: RunningServer, headers: dict[str, str]) -> None:
    answer = httpx.post(f"{hub.url}/v1/auth", headers=headers, timeout=30)
    assert answer.status_code in (200, 401), explain(hub, answer)
    assert answer.headers.get("content-type", "").startswith("application/json"), explain(
        hub, answer
    )
    error_json(answer)


def test_good_key_auth_names_the_user(hub: RunningServer) -> None:
    info = user_of(hub, "alice")
    assert is_id(info.get("userId")), explain(hub, info)
    assert info.get("name") == "alice", explain(hub, info)
    assert user_of(hub, "bob")["userId"] != info["userId"]


# ------------------------------------------------------------------------------------------------
# 2. model create / read / update / delete


def test_created_model_reads_back_nested_config_and_updates_and_deletes(
    hub: RunningServer, scenario: Runner
) -> None:
    run = scenario("model_crud", key=hub.keys["alice"])
    r = run.result
    created = r["created"]
    assert is_id(r["id"]), run.why()
    assert created.get("id") == r["id"], run.why()
    # hub-sdk re-nests the flat batch_size/epochs/imgsz/... into config
    # (docs/protocol/hub-v1.md §5.3, §16.4)
    assert created.get("config") == {
        "batchSize": 8,
        "epochs": 5,
        "imageSize": 64,
        "patience": 10,
        "device": "cpu",
        "cache": "ram",
    }, run.why()
    assert created["meta"]["name"] == "compat-model", run.why()
    assert "dataset" in created, run.why()
    assert "project" in created, run.why()
    assert created.get("status") == "new", run.why()
    assert created.get("has_last_weights") is False, run.why()
    assert created.get("has_best_weights") is False, run.why()
    assert created.get("cfg") == "yolo11n.yaml", run.why()
    train_args = created.get("train_args")
    assert isinstance(train_args, dict), run.why()
    assert set(train_args) <= TRAIN_ARG_KEYS, run.why()
    assert {
        k: train_args.get(k) for k in ("epochs", "imgsz", "batch", "patience", "device", "cache")
    } == {
        "epochs": 5,
        "imgsz": 64,
        "batch": 8,
        "patience": 10,
        "device": "cpu",
        "cache": "ram",
    }, run.why()

    assert is_2xx(r["update_status"]), run.why()
    assert r["after_update"]["meta"]["name"] == "renamed", run.why()
    assert r["after_update"]["meta"].get("description") == "made by hub-sdk", run.why(
        "PATCH must merge nested objects (docs/protocol/hub-v1.md §5.5)"
    )

    assert is_2xx(r["soft_delete_status"]), run.why()
    assert not r["after_soft_delete"], run.why()
    assert r["other_created"] is True, run.why()
    assert is_2xx(r["hard_delete_status"]), run.why()
    assert not r["after_hard_delete"], run.why()
    with api(hub, hub.keys["alice"]) as http:
        for model_id in (r["id"], r["other_id"]):
            answer = http.get(f"/v1/models/{model_id}")
            assert answer.status_code == 404, run.why(explain(hub, answer))
            error_json(answer)


# ------------------------------------------------------------------------------------------------
# 3. cursor pagination and the public list


def test_model_list_pages_forward_and_back_and_public_list_shows_only_public_models(
    tmp_path: Path, scenario: Runner
) -> None:
    # A server of its own, so alice owns exactly the 25 models this test creates.
    with start_server(tmp_path / "pages") as server:
        run = scenario(
            "model_pagination", server=server, alice=server.keys["alice"], bob=server.keys["bob"]
        )
        r = run.result
        walk = r["walk"]
        created = r["created"]
        assert len(created) == 25, run.why()
        assert all(is_id(model_id) for model_id in created), run.why()
        assert walk["total_pages"] == 3, run.why()
        assert [len(page) for page in walk["forward"]] == [10, 10, 5], run.why()
        seen = [model_id for page in walk["forward"] for model_id in page]
        assert len(seen) == len(set(seen)), run.why("an id appeared on two pages")
        assert sorted(seen) == sorted(created), run.why()
        assert walk["last_page"] == 2, run.why()
        assert walk["after_end"]["page"] == 2, run.why()
        assert walk["after_end"]["ids"] == walk["forward"][-1], run.why()
        assert walk["backward"] == walk["forward"][::-1], run.why("previous() pages differ")

        assert is_2xx(r["public_patch_status"]), run.why()
        assert r["public_ids"] == [r["public_id"]], run.why(
            "public=True must list the public models of all users and nothing else "
            "(docs/protocol/hub-v1.md §16.7)"
        )
        assert r["bob_private"] not in r["public_ids"], run.why()
        assert all({"dataset", "project"} <= set(keys) for keys in r["public_entries_keys"]), (
            run.why()
        )
        assert r["bob_own_ids"] == [r["bob_private"]], run.why()


# ------------------------------------------------------------------------------------------------
# 4. metrics


def test_metrics_read_back_transposed_with_null_for_non_finite_values(
    hub: RunningServer, scenario: Runner
) -> None:
    run = scenario("metrics", key=hub.keys["alice"])
    r = run.result
    assert [is_2xx(code) for code in r["upload_status"]] == [True, True], run.why()
    metrics = r["metrics"]
    assert isinstance(metrics, list), run.why()
    series = {item["meta"]["name"]: item["data"] for item in metrics}
    expected: dict[str, dict[str, float | int | None]] = {
        "train/box_loss": {"0": 1.5, "1": 1.25, "2": 1.0},
        "metrics/mAP50(B)": {"0": None, "1": None, "2": 0.25},
        "val/box_loss": {"1": None, "2": 0.75},
        "model/parameters": {"0": 2_590_000},
    }
    assert set(series) == set(expected), run.why()
    for name, want in expected.items():
        got = series[name]
        # an epoch that never carried the metric may be absent or null, nothing else
        extra = {epoch: value for epoch, value in got.items() if epoch not in want}
        assert all(value is None for value in extra.values()), run.why(name)
        present = {epoch: got.get(epoch, "missing") for epoch in want}
        for epoch, value in want.items():
            if value is None:
                assert present[epoch] is None, run.why(f"{name}[{epoch}] must be null")
            else:
                assert isinstance(present[epoch], int | float), run.why(f"{name}[{epoch}]")
                assert math.isclose(present[epoch], value), run.why(f"{name}[{epoch}]")
    assert r["status"] == "training", run.why(
        "metrics start training (docs/protocol/hub-v1.md §16.5)"
    )


# ------------------------------------------------------------------------------------------------
# 5. weights


@pytest.fixture
def weight_files(tmp_path: Path) -> dict[str, Path]:
    """A ~3 MB last.pt and a ~1 MB best.pt of random bytes."""
    folder = tmp_path / "weights"
    folder.mkdir()
    last, best = folder / "last.pt", folder / "best.pt"
    last.write_bytes(os.urandom(3 * 1024 * 1024 + 123))
    best.write_bytes(os.urandom(1024 * 1024 + 7))
    return {"last": last, "best": best}


def test_uploaded_weights_download_byte_identical_without_auth(
    hub: RunningServer, scenario: Runner, weight_files: dict[str, Path]
) -> None:
    last, best = weight_files["last"], weight_files["best"]
    run = scenario("weights", key=hub.keys["alice"], last=str(last), best=str(best))
    r = run.result
    model_id = r["id"]
    assert r["checkpoint_status"] == 200, run.why("an epoch upload must answer exactly 200")
    assert r["mid"]["has_last_weights"] is True, run.why()
    assert r["mid"]["status"] == "training", run.why()
    assert is_2xx(r["final_status"]), run.why()
    assert r["has_best_weights"] is True, run.why()
    assert r["status"] == "trained", run.why()
    assert r["is_trained"] is True, run.why()

    best_url = r["best_url"]
    assert isinstance(best_url, str), run.why()
    assert f"{model_id}/best.pt" in best_url, run.why()
    assert urlsplit(best_url).path.endswith(".pt"), run.why()
    download = r["best_download"]
    assert download["status"] == 200, run.why()
    assert download["sha256"] == sha256_file(best), run.why()
    assert download["content_length"] == str(best.stat().st_size), run.why()

    # the checkpoint, as advertised right after its upload (and after the final one, if still)
    resume_urls = [r["mid"]["resume"]] + ([r["last_url"]] if r["has_last_weights"] else [])
    for url in resume_urls:
        assert isinstance(url, str), run.why()
        assert urlsplit(url).path.endswith(".pt"), run.why()
        got = fetch(url)
        assert got["status"] == 200, run.why(got)
        assert got["sha256"] == sha256_file(last), run.why(got)
        assert got["content_length"] == str(last.stat().st_size), run.why(got)

    for url in (best_url, r["mid"]["resume"]):
        bad = tamper(url, {model_id})
        got = fetch(bad)
        assert got["status"] == 404, run.why({"tampered": bad, "answer": got})


# ------------------------------------------------------------------------------------------------
# 6. heartbeats


def test_heartbeat_marks_model_training_and_keeps_one_agent_id(
    hub: RunningServer, scenario: Runner
) -> None:
    run = scenario("heartbeat", key=hub.keys["alice"])
    r = run.result
    agent_id = r["agent_id"]
    assert r["heartbeats_sent"] >= 3, run.why()
    assert r["errors"] == [], run.why()
    assert isinstance(agent_id, str), run.why()
    assert agent_id, run.why()
    assert [a for a in r["agent_ids_seen"] if a is not None] == [agent_id], run.why()
    assert r["agent_id_updates"] == 1, run.why("the server changed the agent id mid-session")
    with api(hub, hub.keys["alice"]) as http:
        answer = http.get(f"/v1/models/{r['id']}")
    assert answer.status_code == 200, run.why(explain(hub, answer))
    record = answer.json()["data"]
    assert record.get("status") == "training", run.why(record)
    agents = record.get("agents")
    if isinstance(agents, list):  # trainhub lists the agents that beat for the model
        assert [agent.get("id") for agent in agents] == [agent_id], run.why(record)
    elif not find_value(record, agent_id):  # no agent info exposed: check the id's form
        assert is_id(agent_id), run.why(record)


def test_heartbeat_issues_a_fresh_agent_id_for_null_or_unknown_ids(hub: RunningServer) -> None:
    model_id = create_model_http(hub, hub.keys["alice"], "beats")
    url = f"/v1/agent/heartbeat/models/{model_id}"
    with api(hub, hub.keys["alice"]) as http:

        def beat(agent_id: str | None) -> str:
            answer = http.post(url, json={"agent": AGENT, "agentId": agent_id})
            assert answer.status_code == 200, explain(hub, answer)
            issued = answer.json()["data"]["agentId"]
            assert isinstance(issued, str), explain(hub, answer)
            assert issued, explain(hub, answer)
            return str(issued)

        first = beat(None)
        assert beat(first) == first
        forged = "A" * 20
        assert beat(forged) not in (forged, first)
        assert beat(None) != first
        anonymous = httpx.post(f"{hub.url}{url}", json={"agent": AGENT, "agentId": None})
        assert anonymous.status_code == 401, explain(hub, anonymous)
        error_json(anonymous)


# ------------------------------------------------------------------------------------------------
# 7. datasets


def test_dataset_upload_publishes_a_download_link_and_lists_updates_deletes(
    hub: RunningServer, scenario: Runner, tmp_path: Path
) -> None:
    archive = build_detect_zip(tmp_path / "coco8.zip")
    run = scenario("datasets", key=hub.keys["alice"], archive=str(archive))
    r = run.result
    dataset_id = r["id"]
    assert "raised" not in r["create"], run.why()
    assert is_id(dataset_id), run.why()
    assert r["created"].get("id") == dataset_id, run.why()
    assert r["created"]["meta"]["name"] == "coco8", run.why()
    assert is_2xx(r["upload_status"]), run.why()

    link = r["link"]
    assert isinstance(link, str), run.why()
    assert f"{dataset_id}/coco8.zip" in link, run.why()
    assert urlsplit(link).path.endswith(".zip"), run.why()
    assert r["download"]["status"] == 200, run.why()
    assert r["download"]["sha256"] == sha256_file(archive), run.why()
    assert r["download"]["content_length"] == str(archive.stat().st_size), run.why()

    assert dataset_id in r["listed_ids"], run.why()
    assert all({"id", "meta"} <= set(keys) for keys in r["listed_keys"]), run.why()
    assert is_2xx(r["update_status"]), run.why()
    assert r["renamed"]["meta"]["name"] == "coco8-renamed", run.why()
    assert is_2xx(r["delete_status"]), run.why()
    assert not r["after_delete"], run.why()


def test_dataset_archive_with_a_relative_path_is_rejected(
    hub: RunningServer, scenario: Runner, tmp_path: Path
) -> None:
    archive = build_detect_zip(tmp_path / "coco8.zip", yaml_prefix="path: ../datasets/coco8\n")
    run = scenario(
        "dataset_upload_only", key=hub.keys["alice"], dataset_name="coco8-bad", archive=str(archive)
    )
    r = run.result
    assert "raised" not in r["create"], run.why()
    assert is_id(r["id"]), run.why()
    assert r["upload_status"] is None, run.why(
        "the server accepted a relative path: (docs/protocol/hub-v1.md §16.2)"
    )
    assert not r["after"].get("url"), run.why()
    with api(hub, hub.keys["alice"]) as http:
        answer = http.post(
            f"/v1/datasets/{r['id']}/upload",
            files={"coco8.zip": ("coco8.zip", archive.read_bytes())},
        )
    assert 400 <= answer.status_code < 500, run.why(explain(hub, answer))
    assert "path" in error_json(answer)["message"], run.why(explain(hub, answer))


# ------------------------------------------------------------------------------------------------
# 8. projects


def test_project_can_be_created_read_updated_given_an_image_listed_and_deleted(
    hub: RunningServer, scenario: Runner, tmp_path: Path
) -> None:
    image = write_png(tmp_path / "cover.png")
    run = scenario("projects", key=hub.keys["alice"], image=str(image))
    r = run.result
    assert "raised" not in r["create"], run.why()
    assert is_id(r["id"]), run.why()
    assert r["read"].get("id") == r["id"], run.why()
    assert r["read"]["meta"]["name"] == "compat-project", run.why()
    assert is_2xx(r["update_status"]), run.why()
    assert r["renamed"]["meta"]["name"] == "renamed-project", run.why()
    assert is_2xx(r["image_status"]), run.why()
    assert r["with_image"].get("id") == r["id"], run.why()
    assert r["id"] in r["listed_ids"], run.why()
    assert all({"id", "meta"} <= set(keys) for keys in r["listed_keys"]), run.why()
    assert is_2xx(r["delete_status"]), run.why()
    assert not r["after_delete"], run.why()


# ------------------------------------------------------------------------------------------------
# 9. users


def test_user_read_returns_own_user_and_refuses_someone_elses(
    hub: RunningServer, scenario: Runner
) -> None:
    alice_id = user_of(hub, "alice")["userId"]
    # hub-sdk sends GET /v1/users/{id} but its Users.get_data always ends in {}
    # (docs/protocol/hub-v1.md §5.20); the log tells a 2xx JSON answer (_reconstruct_data
    # error) from a refused one (no response).
    own = scenario("user", key=hub.keys["alice"], user_id=alice_id)
    assert own.result["data"] == {}, own.why()
    assert any("_reconstruct_data" in line for line in own.result["log"]), own.why()
    other = scenario("user", key=hub.keys["bob"], user_id=alice_id)
    assert any("Received no response" in line for line in other.result["log"]), other.why()

    with api(hub, hub.keys["alice"]) as http:
        answer = http.get(f"/v1/users/{alice_id}")
    assert answer.status_code == 200, explain(hub, answer)
    data = answer.json()["data"]
    assert data.get("id") == alice_id, explain(hub, answer)
    assert "alice" in (data.get("name"), data.get("meta", {}).get("name")), explain(hub, answer)
    with api(hub, hub.keys["bob"]) as http:
        answer = http.get(f"/v1/users/{alice_id}")
    assert answer.status_code in (403, 404), explain(hub, answer)
    error_json(answer)
    with api(hub, None) as http:
        answer = http.get(f"/v1/users/{alice_id}")
    assert answer.status_code == 401, explain(hub, answer)
    error_json(answer)


# ------------------------------------------------------------------------------------------------
# 10. authorization between users


def test_other_users_cannot_touch_a_private_model_but_can_read_it_once_public(
    hub: RunningServer, scenario: Runner
) -> None:
    run = scenario("authz", alice=hub.keys["alice"], bob=hub.keys["bob"])
    r = run.result
    private = r["private"]
    assert not private["read"], run.why()
    assert private["update"] is None, run.why()
    assert private["soft_delete"] is None, run.why()
    assert private["hard_delete"] is None, run.why()
    assert private["metrics"] is None, run.why()
    assert r["alice_after_private"]["meta"]["name"] == "alice-private", run.why()

    assert is_2xx(r["make_public_status"]), run.why()
    public = r["public"]
    assert public["read"].get("id") == r["id"], run.why()
    assert public["read"]["meta"]["name"] == "alice-private", run.why()
    assert public["update"] is None, run.why()
    assert public["hard_delete"] is None, run.why()
    assert r["alice_after_public"]["meta"]["name"] == "alice-private", run.why()
    assert r["alice_after_public"].get("public") is True, run.why()


def test_refusals_between_users_are_json_errors(hub: RunningServer) -> None:
    model_id = create_model_http(hub, hub.keys["alice"], "private")
    path = f"/v1/models/{model_id}"
    with api(hub, hub.keys["bob"]) as bob, api(hub, hub.keys["alice"]) as alice:
        for answer in (
            bob.get(path),
            bob.patch(path, json={"meta": {"name": "x"}}),
            bob.delete(path, params={"hard": "True"}),
        ):
            assert answer.status_code in (403, 404), explain(hub, answer)
            error_json(answer)
        made_public = alice.patch(path, json={"public": True})
        assert is_2xx(made_public.status_code), explain(hub, made_public)
        read = bob.get(path)
        assert read.status_code == 200, explain(hub, read)
        assert read.json()["data"]["meta"]["name"] == "private", explain(hub, read)
        for answer in (
            bob.patch(path, json={"meta": {"name": "x"}}),
            bob.delete(path, params={"hard": "True"}),
        ):
            assert answer.status_code == 403, explain(hub, answer)
            error_json(answer)
        unchanged = alice.get(path)
        assert unchanged.json()["data"]["meta"]["name"] == "private", explain(hub, unchanged)


# ------------------------------------------------------------------------------------------------
# 11. export and hosted inference need a worker: tests/exports/test_clients.py
