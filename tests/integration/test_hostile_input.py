"""Hostile input: traversal spellings, foreign Host headers, floods, oversized or odd JSON.

The rules are docs/security.md §2.1, §2.4, §2.6 and §2.14: no client string becomes a path, JSON
only as application/json, the Host header checked, size limits, rate limits. A 429 carries all
four rate-limit headers (docs/protocol/hub-v1.md §2.3).
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.blobs import files_under, stored_files
from tests.conftest import make_settings
from tests.factories import (
    PNG_1PX,
    Users,
    create_model,
    dataset_zip,
    error,
    ok,
)
from tests.multipart import Part, file_part, multipart_body
from tests.routes import api_endpoints
from tests.testclient import TestClient
from tests.world import World, as_sent, build_world, call
from trainhub.server.app import create_app
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state
from trainhub.server.web.routing import PageRoute

MARKER = "trainhub-evil-7f3a"
# How path-traversal fixes were bypassed in MLflow and friends (docs/security.md §2.1).
TRAVERSALS = [
    "..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2e%2e",  # literal "." and ".." segments are removed by httpx before sending
    "%2e",
    "\\..\\..\\etc\\passwd",
    "..%5c..%5cwindows",
    "%2f%2fproc%2fself%2froot",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "%25252e%25252e%25252f",
    f"{MARKER}%23.zip",
    f"{MARKER};jsessionid=1",
    "..;%2f..;%2fetc",
    "%c0%ae%c0%ae%c0%af",
    f"{MARKER}%00.zip",
    "A" * 5000,
]
ID_PARAMS = {"model_id", "dataset_id", "project_id", "object_id", "user_id", "key_id", "upload_id"}
NAME_PARAMS = {"token", "label", "name", "owner", "project", "model", "slug"}
FILE_NAMES = [
    f"../../{MARKER}.zip",
    f"..%2f..%2f{MARKER}.zip",
    f"%2e%2e%2f{MARKER}.zip",
    f"..\\..\\{MARKER}.zip",
    f"//proc/self/root/{MARKER}.zip",
    f"%252e%252e%252f{MARKER}.zip",
    f"{MARKER}#.zip",
    f"{MARKER};.zip",
    f"C:\\{MARKER}.zip",
    f".{MARKER}.zip",
    f"{MARKER}\r\nX-Injected: 1.zip",
]


@pytest.fixture
def world(app: FastAPI, alice: TestClient, users: Users, tmp_path: Path) -> World:
    return build_world(app, alice, users, tmp_path / "world")


def nothing_outside_storage(tmp_path: Path, before: set[str]) -> None:
    """Assert no file appeared under tmp_path outside the storage folder, nor by MARKER anywhere."""
    after = {f for f in files_under(tmp_path) if not f.startswith("data/blobs/")}
    assert after <= before, f"files written outside storage: {sorted(after - before)}"
    for folder in (Path("/tmp"), Path.cwd(), tmp_path.parent):
        assert not list(folder.glob(f"*{MARKER}*")), f"a {MARKER} file appeared in {folder}"


# --- ids and names in the path ---


def test_traversal_spellings_in_any_path_parameter_are_refused_and_write_nothing(
    app: FastAPI, world: World, settings: Settings, tmp_path: Path
) -> None:
    before = files_under(tmp_path)
    blobs = stored_files(settings)
    failures, tried = [], 0
    with TestClient(app, raise_server_exceptions=False) as client:
        for endpoint in api_endpoints(app):
            page = isinstance(endpoint.route, PageRoute)
            credential = "alice's session" if page else "alice's key"
            for param in set(endpoint.path_params) & (ID_PARAMS | NAME_PARAMS):
                for spelling in TRAVERSALS:
                    tried += 1
                    answer = call(client, endpoint, world, credential, {param: as_sent(spelling)})
                    if answer.status not in (400, 404, 405, 422):
                        failures.append(
                            f"{endpoint.label} {param}={spelling[:40]}: {answer.status}"
                        )
                    elif endpoint.method != "HEAD" and answer.json().get("success") is not False:
                        failures.append(f"{endpoint.label} {param}={spelling[:40]}: not JSON")
    assert tried > 300
    assert not failures, "\n".join(failures)
    assert stored_files(settings) == blobs
    nothing_outside_storage(tmp_path, before)


def test_a_traversal_in_a_json_body_id_is_refused(alice, world: World) -> None:
    for spelling in ("../" + world.model_id, "..%2f..%2fetc", world.model_id + "/../x"):
        error(alice.post("/model-reset", json={"modelId": spelling}), 404)
        response = alice.post("/v1/models", json={"meta": {"name": "m"}, "projectId": spelling})
        assert response.status_code in (404, 422), response.text
    ok(alice.get(f"/v1/models/{world.model_id}"))


# --- file names in multipart bodies ---


def dataset_upload(client: TestClient, dataset_id: str, filename: str) -> Any:
    body, headers = multipart_body([file_part(filename, dataset_zip())])
    return client.post(f"/v1/datasets/{dataset_id}/upload", content=body, headers=headers)


@pytest.mark.parametrize("filename", FILE_NAMES)
def test_a_hostile_archive_name_is_refused_or_kept_as_display_text_only(
    alice, anon, settings: Settings, tmp_path: Path, filename: str
) -> None:
    before = files_under(tmp_path)
    dataset_id = ok(alice.post("/v1/datasets", json={"meta": {"name": "d"}}))["id"]
    response = dataset_upload(alice, dataset_id, filename)
    if response.status_code == 200:
        record = response.json()["data"]
        assert stored_files(settings) == {f"datasets/{dataset_id}/{record['sha256']}"}
        last = record["url"].rsplit("/", 1)[1]
        assert "/" not in last and "\\" not in last and ".." not in last
        path = record["url"].removeprefix("http://testserver")
        download = anon.get("/".join(as_sent(segment) for segment in path.split("/")))
        assert download.status_code == 200
        assert "\n" not in download.headers["content-disposition"]
    else:
        assert response.status_code in (400, 422), response.text
        error(response, response.status_code)
        assert stored_files(settings) == set()
    nothing_outside_storage(tmp_path, before)


@pytest.mark.parametrize("filename", FILE_NAMES)
def test_a_hostile_weights_or_cover_file_name_never_becomes_a_path(
    alice, settings: Settings, tmp_path: Path, filename: str
) -> None:
    before = files_under(tmp_path)
    model_id = create_model(alice)
    project_id = ok(alice.post("/v1/projects", json={"meta": {"name": "p"}}))["id"]
    fields = [Part("epoch", b"0"), Part("type", b"epoch"), Part("isBest", b"True")]
    body, headers = multipart_body([*fields, Part("last.pt", b"weights", filename)])
    weights = alice.post(f"/v1/models/{model_id}/upload", content=body, headers=headers)
    body, headers = multipart_body([Part("file", PNG_1PX, filename)])
    cover = alice.post(f"/v1/projects/{project_id}/upload", content=body, headers=headers)
    for response in (weights, cover):
        assert response.status_code in (200, 400, 422), response.text
    for name in stored_files(settings):
        assert name.startswith((f"models/{model_id}/", f"projects/{project_id}/")), name
    nothing_outside_storage(tmp_path, before)


# --- Host header ---


@pytest.mark.parametrize(
    "host", ["evil.example", "testserver.evil.example", "localhost", "evil.example:80", ""]
)
def test_a_host_header_that_is_not_ours_gets_400_json(anon, users: Users, host: str) -> None:
    response = anon.get("/v1/models", headers={"host": host, "x-api-key": users.alice.key})
    error(response, 400)
    assert "host" in response.json()["message"]


def test_our_own_host_with_a_port_is_served(anon) -> None:
    ok(anon.get("/healthz", headers={"host": "testserver:8000"}))


# --- rate limits ---


@pytest.fixture
def limited_app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    settings = make_settings(
        tmp_path / "limited", database_url, rate_limit="3/minute", anonymous_rate_limit="3/minute"
    )
    application = create_app(settings)
    yield application
    hub_state(application).db.dispose()


RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")


def test_the_fourth_request_in_a_minute_gets_429_with_all_four_headers(
    limited_app: FastAPI, users: Users
) -> None:
    with TestClient(limited_app, headers={"x-api-key": users.alice.key}) as client:
        answers = [client.get("/v1/models") for _ in range(4)]
    for remaining, answer in zip(("2", "1", "0"), answers[:3], strict=True):
        ok(answer)
        assert all(name in answer.headers for name in RATE_HEADERS)
        assert answer.headers["x-ratelimit-limit"] == "3"
        assert answer.headers["x-ratelimit-remaining"] == remaining
    limited = answers[3]
    error(limited, 429)
    for name in (*RATE_HEADERS, "retry-after"):
        assert name in limited.headers, name
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert int(limited.headers["x-ratelimit-reset"]) > 1_700_000_000


def test_requests_with_a_wrong_key_are_rate_limited_like_anonymous_ones(
    limited_app: FastAPI, users: Users
) -> None:
    with TestClient(limited_app) as client:
        answers = [client.post("/v1/auth", headers={"x-api-key": f"ul{n:040x}"}) for n in range(4)]
        assert [a.status_code for a in answers] == [401, 401, 401, 429]
        assert answers[0].headers["x-ratelimit-remaining"] == "2"
        for name in (*RATE_HEADERS, "retry-after"):
            assert name in answers[3].headers, name
        ok(client.post("/v1/auth", headers={"x-api-key": users.alice.key}))


def test_rate_limits_count_per_key_and_per_anonymous_client(
    limited_app: FastAPI, users: Users
) -> None:
    with TestClient(limited_app, headers={"x-api-key": users.alice.key}) as alice:
        for _ in range(3):
            ok(alice.get("/v1/models"))
        error(alice.get("/v1/models"), 429)
    with TestClient(limited_app, headers={"x-api-key": users.bob.key}) as bob:
        ok(bob.get("/v1/models"))
    with TestClient(limited_app) as anon:
        answers = [anon.get("/v1/models", params={"public": "True"}) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "retry-after" in answers[3].headers


# --- JSON bodies ---


def test_a_json_body_over_max_json_bytes_gets_413(alice, settings: Settings) -> None:
    big = {"meta": {"name": "m"}, "notes": "x" * (settings.max_json_bytes + 1)}
    error(alice.post("/v1/models", json=big), 413)
    metrics = {"type": "metrics", "metrics": {"0": json.dumps({"a": 1}), "pad": "x" * 2**20}}
    error(alice.post(f"/v1/models/{create_model(alice)}", json=metrics), 413)


def test_an_oversized_json_body_without_content_length_gets_413(alice, settings: Settings) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"meta": {"name": "m"}, "notes": "'
        for _ in range(settings.max_json_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = alice.post(
        "/v1/models", content=chunks(), headers={"content-type": "application/json"}
    )
    error(response, 413)


def nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/models", "[" * 100_000 + "]" * 100_000),
        ("/v1/models", nested(100_000)),
        ("/v1/models", nested(600)),  # json.loads takes it; the document check must too
        ("/v1/projects", '{"meta": {"name": "p"}, "extra": ' + nested(900) + "}"),
        ("/v1/models", '{"meta": ' + nested(50) + "}"),
        ("/v1/datasets", '{"meta": {"name": "d"}, "extra": ' + nested(50) + "}"),
        ("/v1/keys", nested(2000)),
    ],
    ids=["arrays", "objects", "objects-600", "project-900", "meta", "dataset", "keys"],
)
def test_deeply_nested_json_is_refused_without_a_500(alice, path: str, body: str) -> None:
    response = alice.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
    error(response, response.status_code)


def test_deeply_nested_json_in_metrics_and_heartbeats_is_refused_without_a_500(alice) -> None:
    model_id = create_model(alice)
    epoch = {"0": "[" * 100_000 + "]" * 100_000}
    for url, body in (
        (f"/v1/models/{model_id}", {"type": "metrics", "metrics": epoch}),
        (f"/v1/models/{model_id}", {"type": "metrics", "metrics": {"0": nested(5000)}}),
    ):
        response = alice.post(url, json=body)
        assert response.status_code in (400, 422), response.text
        error(response, response.status_code)
    heartbeat = alice.post(
        f"/v1/agent/heartbeat/models/{model_id}",
        content=nested(100_000),
        headers={"content-type": "application/json"},
    )
    error(heartbeat, 400)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded", None],
)
def test_json_sent_as_anything_but_application_json_gets_415(alice, content_type) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps({"meta": {"name": "m"}}).encode()
    response = alice.post("/v1/models", content=body, headers=headers)
    error(response, 415)
    assert ok(alice.get("/v1/models"))["total"] == 0


def test_json_with_a_charset_parameter_is_accepted(alice) -> None:
    body = json.dumps({"meta": {"name": "m"}}).encode()
    headers = {"content-type": "application/json; charset=utf-8"}
    ok(alice.post("/v1/models", content=body, headers=headers))


def test_non_finite_numbers_are_refused_in_ordinary_json(alice) -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = '{"meta": {"name": "m"}, "config": {"epochs": ' + literal + "}}"
        response = alice.post(
            "/v1/models", content=body, headers={"content-type": "application/json"}
        )
        error(response, 400)


@pytest.mark.parametrize("collection", ["models", "datasets", "projects"])
def test_a_nul_character_in_a_display_name_is_dropped_not_a_500(alice, collection: str) -> None:
    created = ok(alice.post(f"/v1/{collection}", json={"meta": {"name": "bir\u0000ds"}}))
    assert ok(alice.get(f"/v1/{collection}/{created['id']}"))["meta"]["name"] == "birds"


def test_a_nul_character_in_a_key_name_is_dropped_not_a_500(alice) -> None:
    created = ok(alice.post("/v1/keys", json={"name": "lap\u0000top"}))
    assert created["name"] == "laptop"
    error(alice.delete("/v1/keys/ul12345%00"), 404)


# --- what anonymous callers learn ---


def test_a_failing_health_check_names_the_part_but_no_server_path(anon, settings: Settings) -> None:
    temp = settings.data_dir / "blobs" / "tmp"
    temp.rmdir()
    temp.write_text("not a folder any more")
    response = anon.get("/healthz")
    message = error(response, 503)
    assert "storage" in message
    assert str(settings.data_dir.resolve()) not in response.text
    assert "tmp" not in message
    temp.unlink()
    temp.mkdir()
    healthy = ok(anon.get("/healthz"))
    assert healthy["database"] == healthy["storage"] == "ok"
    assert healthy["queue"] == {"status": "ok", "depth": 0, "workers": 0}
