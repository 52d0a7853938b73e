"""HubClient against the real app in the same process (TestClient is an httpx.Client).

Fault injection the real server cannot produce on demand (503s, dropped connections, a tampered
ETag) uses httpx.MockTransport, alone or wrapped around the real app; everything else is real.
"""

import hashlib
import os
import random
import threading
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.blobs import stored_files
from tests.factories import Users, create_users, dataset_zip, weights_file
from tests.testclient import TestClient
from trainhub import __version__
from trainhub.client.api import ARCHIVE_CHECK_TIMEOUT_S, HubClient
from trainhub.client.errors import (
    ApiError,
    HubUnreachable,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    RateLimited,
    TrainhubError,
)
from trainhub.client.retry import backoff_delay_s
from trainhub.client.transfer import CHUNK_BYTES
from trainhub.server.app import create_app
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state

BASE = "http://testserver"
MODEL_DOC = {
    "meta": {"name": "resnet-a"},
    "config": {"epochs": 3, "imageSize": 64, "batchSize": 4},
    "lineage": {"architecture": {"name": "yolo11n"}},
}


class Sleeps(list[float]):
    """An injected `sleep` that records how long it was asked to wait, and never waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def hub(app: FastAPI, users: Users, sleeps: Sleeps) -> HubClient:
    """Alice's client, talking to the real app in-process."""
    return HubClient(BASE, users.alice.key, http=TestClient(app), sleep=sleeps)


@pytest.fixture
def bob_hub(app: FastAPI, users: Users, sleeps: Sleeps) -> HubClient:
    return HubClient(BASE, users.bob.key, http=TestClient(app), sleep=sleeps)


def server_message(app: FastAPI, key: str, method: str, path: str, **kwargs: Any) -> str:
    """Ask the app directly, without HubClient, and return the `message` it answers."""
    with TestClient(app, headers={"x-api-key": key}) as raw:
        return str(raw.request(method, path, **kwargs).json()["message"])


def mock_hub(
    handler: Callable[[httpx.Request], httpx.Response], sleeps: Sleeps, **options: Any
) -> HubClient:
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return HubClient(BASE, "ul" + "0" * 40, http=http, sleep=sleeps, **options)


class Script:
    """A MockTransport handler that answers (or raises) its responses in turn and keeps requests."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def ok_json(data: object) -> httpx.Response:
    return httpx.Response(200, json={"success": True, "data": data})


# --- every endpoint against the real app -----------------------------------------------------


def test_authenticate_returns_whose_key_it_is(hub: HubClient, users: Users) -> None:
    identity = hub.authenticate()
    assert (identity.user_id, identity.name, identity.is_admin) == (users.alice.id, "alice", True)


def test_a_wrong_key_raises_not_authenticated_with_the_servers_message(
    app: FastAPI, sleeps: Sleeps
) -> None:
    bad_key = "ul" + "f" * 40
    hub = HubClient(BASE, bad_key, http=TestClient(app), sleep=sleeps)
    with pytest.raises(NotAuthenticated) as caught:
        hub.get_model("A" * 20)
    assert caught.value.status == 401
    assert caught.value.message == server_message(app, bad_key, "GET", f"/v1/models/{'A' * 20}")
    with pytest.raises(NotAuthenticated):
        hub.authenticate()
    assert sleeps == []


def test_create_get_and_update_a_model(hub: HubClient) -> None:
    model_id = hub.create_model(MODEL_DOC)
    record = hub.get_model(model_id)
    assert (record.id, record.meta["name"], record.status) == (model_id, "resnet-a", "new")
    updated = hub.update_model(model_id, {"meta": {"name": "resnet-b"}, "public": True})
    assert updated.meta["name"] == "resnet-b" and updated.public
    assert hub.get_model(model_id).meta["name"] == "resnet-b"


def test_a_missing_model_raises_not_found_with_the_servers_message(
    app: FastAPI, hub: HubClient, users: Users, sleeps: Sleeps
) -> None:
    with pytest.raises(NotFound) as caught:
        hub.get_model("B" * 20)
    expected = server_message(app, users.alice.key, "GET", f"/v1/models/{'B' * 20}")
    assert caught.value.message == expected
    assert str(caught.value) == f"{expected} (HTTP 404)"
    with pytest.raises(NotFound):
        hub.get_model("../../v1/auth")  # quoted into one path segment, never another route
    assert sleeps == []


def test_changing_someone_elses_public_model_raises_permission_denied(
    app: FastAPI, hub: HubClient, bob_hub: HubClient, users: Users
) -> None:
    model_id = hub.create_model({**MODEL_DOC, "public": True})
    assert bob_hub.get_model(model_id).id == model_id
    with pytest.raises(PermissionDenied) as caught:
        bob_hub.update_model(model_id, {"meta": {"name": "mine now"}})
    expected = server_message(
        app, users.bob.key, "PATCH", f"/v1/models/{model_id}", json={"meta": {"name": "x"}}
    )
    assert caught.value.status == 403 and caught.value.message == expected


def test_list_models_pages_and_iter_models_walks_every_page(hub: HubClient) -> None:
    ids = [hub.create_model({**MODEL_DOC, "meta": {"name": f"m{i}"}}) for i in range(5)]
    first = hub.list_models(limit=2)
    assert first.total == 5 and [m.id for m in first.results] == ids[::-1][:2]
    second = hub.list_models(limit=2, last_doc_id=first.lastRecordId)
    assert [m.id for m in second.results] == ids[::-1][2:4]
    assert [m.id for m in hub.iter_models(page_size=2)] == ids[::-1]
    assert list(hub.iter_models(public=True)) == []


def test_metrics_upload_like_the_stock_client_and_read_back(hub: HubClient) -> None:
    model_id = hub.create_model(MODEL_DOC)
    stored = hub.upload_metrics(model_id, {0: {"loss": 1.5}, 1: {"loss": float("nan"), "map": 0.2}})
    assert stored == [0, 1]
    assert hub.upload_metrics(model_id, {1: {"map": 0.3}}) == [1]  # merges into epoch 1
    series = {s.meta["name"]: s.data for s in hub.get_metrics(model_id)}
    assert series == {"loss": {"0": 1.5, "1": None}, "map": {"1": 0.3}}
    with pytest.raises(ValueError, match="empty"):
        hub.upload_metrics(model_id, {})


def test_heartbeat_issues_an_agent_id_and_keeps_it(hub: HubClient) -> None:
    model_id = hub.create_model(MODEL_DOC)
    agent_id = hub.heartbeat(model_id, agent="python-3.11-local", interval_s=30.0)
    assert hub.heartbeat(model_id, agent="python-3.11-local", agent_id=agent_id) == agent_id
    record = hub.get_model(model_id)
    assert record.status == "training"
    agents = record.model_extra["agents"] if record.model_extra else []
    assert [(a["id"], a["intervalSeconds"]) for a in agents] == [(agent_id, 30.0)]
    hub.heartbeat(model_id, agent="python-3.11-local", agent_id=agent_id, state="finished")
    assert hub.get_model(model_id).model_extra["agents"][0]["state"] == "finished"  # type: ignore[index]


def test_epoch_and_final_weights_upload_and_download_verified(
    hub: HubClient, tmp_path: Path
) -> None:
    model_id = hub.create_model(MODEL_DOC)
    last, last_sha = weights_file(tmp_path / "last.pt", 10_000)
    stored = hub.upload_weights(model_id, last, epoch=0, is_best=True)
    assert (stored.kind, stored.epoch, stored.sha256, stored.size_bytes) == (
        "last",
        0,
        last_sha,
        10_000,
    )
    best, best_sha = weights_file(tmp_path / "best.pt", 7_000)
    assert hub.upload_weights(model_id, best, epoch=2, final=True, map=0.5).sha256 == best_sha
    record = hub.get_model(model_id)
    assert record.status == "trained" and record.has_best_weights and record.weights
    dest = tmp_path / "down" / "hub" / model_id / "best.pt"
    assert hub.download(record.weights, dest) == best_sha
    assert dest.read_bytes() == best.read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["best.pt"]  # no temporary file left


def test_an_upload_whose_bytes_do_not_match_its_sha256_is_refused_and_not_retried(
    hub: HubClient, tmp_path: Path, sleeps: Sleeps
) -> None:
    model_id = hub.create_model(MODEL_DOC)
    path, _ = weights_file(tmp_path / "last.pt")
    with pytest.raises(ApiError, match="sha256 does not match") as caught:
        hub.upload_weights(model_id, path, epoch=0, sha256="0" * 64)
    assert caught.value.status == 400
    assert sleeps == []
    assert not hub.get_model(model_id).has_last_weights


def test_progress_reports_every_file_byte_once(hub: HubClient, tmp_path: Path) -> None:
    model_id = hub.create_model(MODEL_DOC)
    path, sha = weights_file(tmp_path / "last.pt", 3 * 256 * 1024 + 17)
    reported: list[int] = []
    assert hub.upload_weights(model_id, path, epoch=1, progress=reported.append).sha256 == sha
    assert sum(reported) == path.stat().st_size and len(reported) == 4


def test_a_checkpoint_that_shrinks_while_sent_raises_oserror_and_is_not_stored(
    hub: HubClient, tmp_path: Path
) -> None:
    model_id = hub.create_model(MODEL_DOC)
    path, sha = weights_file(tmp_path / "last.pt", 1024 * 1024)

    def truncate(_: int) -> None:
        with path.open("r+b") as handle:
            handle.truncate(1000)

    with pytest.raises(OSError, match="shrank"):
        hub.upload_weights(model_id, path, epoch=0, sha256=sha, progress=truncate)
    assert not hub.get_model(model_id).has_last_weights


def test_local_file_problems_are_reported_before_anything_is_sent(
    hub: HubClient, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):
        hub.upload_weights("C" * 20, tmp_path / "missing.pt", epoch=0)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        hub.upload_weights("C" * 20, tmp_path / "empty.pt", epoch=0)
    path, _ = weights_file(tmp_path / "last.pt")
    with pytest.raises(ValueError, match="64 hex"):
        hub.upload_weights("C" * 20, path, epoch=0, sha256="abc\r\nX-Evil: 1")


# --- datasets ---------------------------------------------------------------------------------


def archive_file(folder: Path, name: str = "shapes") -> tuple[Path, str]:
    """Write a small valid dataset zip `<name>.zip`; return its path and sha256."""
    path = folder / f"{name}.zip"
    path.write_bytes(dataset_zip(name))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_create_and_upload_a_dataset_returns_the_hubs_sha256_and_message(
    hub: HubClient, tmp_path: Path
) -> None:
    path, sha = archive_file(tmp_path)
    dataset_id = hub.create_dataset("shapes", path.name)
    reported: list[int] = []
    answer = hub.upload_dataset(dataset_id, path, progress=reported.append)
    record = answer.data
    assert (record.id, record.sha256, record.size_bytes) == (dataset_id, sha, path.stat().st_size)
    assert (record.status, record.filename, record.meta["name"]) == (
        "ready",
        "shapes.zip",
        "shapes",
    )
    assert answer.message == "dataset archive stored (detect layout)"
    assert sum(reported) == path.stat().st_size
    again = hub.upload_dataset(dataset_id, str(path), sha256=sha.upper())
    assert again.data.sha256 == sha  # a re-upload replaces the archive with the same one


def test_a_dataset_upload_waits_for_the_archive_check(
    app: FastAPI, users: Users, tmp_path: Path, sleeps: Sleeps
) -> None:
    real, seen = TestClient(app), []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        response: httpx.Response = real.send(request)
        return response

    http = httpx.Client(transport=httpx.MockTransport(record))
    hub = HubClient(BASE, users.alice.key, http=http, timeout_s=12.5, sleep=sleeps)
    path, sha = archive_file(tmp_path)
    assert hub.upload_dataset(hub.create_dataset("shapes", path.name), path).data.sha256 == sha
    timeouts = [request.extensions["timeout"] for request in seen]
    assert timeouts[0] == httpx.Timeout(12.5).as_dict()
    assert timeouts[1] == httpx.Timeout(12.5, read=ARCHIVE_CHECK_TIMEOUT_S).as_dict()


def test_an_unusable_archive_raises_the_hubs_reason_at_once(
    hub: HubClient, tmp_path: Path, sleeps: Sleeps
) -> None:
    path = tmp_path / "notes.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "no images here")
    dataset_id = hub.create_dataset("notes", path.name)
    with pytest.raises(ApiError) as caught:
        hub.upload_dataset(dataset_id, path)
    assert caught.value.status == 422 and caught.value.message
    assert sleeps == []
    assert next(hub.iter_datasets()).status == "new"


def test_list_datasets_pages_and_iter_datasets_walks_every_page(
    hub: HubClient, bob_hub: HubClient
) -> None:
    ids = [hub.create_dataset(f"d{i}", f"d{i}.zip") for i in range(5)]
    first = hub.list_datasets(limit=2)
    assert first.total == 5 and [d.id for d in first.results] == ids[::-1][:2]
    second = hub.list_datasets(limit=2, last_doc_id=first.lastRecordId)
    assert [d.id for d in second.results] == ids[::-1][2:4]
    assert [d.id for d in hub.iter_datasets(page_size=2)] == ids[::-1]
    assert list(hub.iter_datasets(public=True)) == []
    shared = bob_hub.create_dataset("shared", "shared.zip", public=True)
    assert [d.id for d in hub.iter_datasets(public=True, page_size=1)] == [shared]
    assert shared not in {d.id for d in hub.iter_datasets()}


def test_delete_dataset_removes_it_and_its_archive(
    hub: HubClient, settings: Settings, tmp_path: Path
) -> None:
    path, sha = archive_file(tmp_path)
    dataset_id = hub.create_dataset("shapes", path.name)
    hub.upload_dataset(dataset_id, path, sha256=sha)
    assert stored_files(settings) == {f"datasets/{dataset_id}/{sha}"}
    hidden = hub.create_dataset("hidden", "hidden.zip")
    hub.delete_dataset(hidden, hard=False)
    hub.delete_dataset(dataset_id)
    assert list(hub.iter_datasets()) == []
    assert stored_files(settings) == set()
    with pytest.raises(NotFound):
        hub.delete_dataset(dataset_id)


def test_another_users_dataset_is_not_found(
    hub: HubClient, bob_hub: HubClient, tmp_path: Path, sleeps: Sleeps
) -> None:
    path, _ = archive_file(tmp_path)
    dataset_id = hub.create_dataset("shapes", path.name)
    with pytest.raises(NotFound, match=dataset_id):
        bob_hub.upload_dataset(dataset_id, path)
    with pytest.raises(NotFound, match=dataset_id):
        bob_hub.delete_dataset(dataset_id)
    assert [d.id for d in hub.iter_datasets()] == [dataset_id] and sleeps == []


# --- downloads --------------------------------------------------------------------------------


@pytest.fixture
def trained(hub: HubClient, tmp_path: Path) -> tuple[str, bytes]:
    """A trained model's weights URL and the bytes it should download."""
    model_id = hub.create_model(MODEL_DOC)
    path, _ = weights_file(tmp_path / "best.pt", 50_000)
    hub.upload_weights(model_id, path, epoch=0, final=True)
    url = hub.get_model(model_id).weights
    assert url is not None
    return url, path.read_bytes()


def test_download_with_a_tampered_etag_is_rejected_and_leaves_nothing(
    app: FastAPI, trained: tuple[str, bytes], tmp_path: Path, sleeps: Sleeps
) -> None:
    real = TestClient(app)

    def tamper(request: httpx.Request) -> httpx.Response:
        response = real.send(request)
        headers = {**response.headers, "etag": '"' + "e" * 64 + '"'}
        return httpx.Response(response.status_code, headers=headers, content=response.content)

    hub = mock_hub(tamper, sleeps)
    dest = tmp_path / "out" / "best.pt"
    with pytest.raises(TrainhubError, match="does not match its ETag"):
        hub.download(trained[0], dest)
    assert list(dest.parent.iterdir()) == []


def test_download_of_a_bad_link_raises_not_found_and_keeps_the_old_file(
    hub: HubClient, trained: tuple[str, bytes], tmp_path: Path, sleeps: Sleeps
) -> None:
    dest = tmp_path / "best.pt"
    dest.write_bytes(b"old")
    with pytest.raises(NotFound, match="invalid or expired"):
        hub.download(trained[0].replace("/files/", "/files/x"), dest)
    with pytest.raises(NotFound):
        hub.download("/files/nothing/here.pt", dest)
    assert dest.read_bytes() == b"old" and sleeps == []
    assert hub.download(trained[0], dest) == hashlib.sha256(trained[1]).hexdigest()


def test_download_sends_no_api_key(trained: tuple[str, bytes], tmp_path: Path) -> None:
    script = Script(httpx.Response(200, content=b"weights"))
    http = httpx.Client(transport=httpx.MockTransport(script), headers={"x-api-key": "k"})
    hub = HubClient(BASE, "ul" + "0" * 40, http=http)
    hub.download(trained[0], tmp_path / "w.pt")
    request = script.seen[0]
    assert "x-api-key" not in request.headers
    assert request.headers["user-agent"] == f"trainhub/{__version__}"


# --- a base URL with a path prefix ----------------------------------------------------------


def test_a_base_url_may_carry_a_path_prefix(app: FastAPI, users: Users) -> None:
    prefixed = Starlette(routes=[Mount("/hub", app=app)])
    hub = HubClient(f"{BASE}/hub/", users.alice.key, http=TestClient(prefixed))
    assert hub.url == f"{BASE}/hub"
    assert hub.authenticate().name == "alice"
    model_id = hub.create_model(MODEL_DOC)
    assert hub.get_model(model_id).id == model_id


# --- headers, retries and fault injection ---------------------------------------------------


def test_every_request_carries_key_user_agent_and_timeout(sleeps: Sleeps) -> None:
    script = Script(ok_json({"userId": "u", "name": "n", "isAdmin": False}))
    mock_hub(script, sleeps, timeout_s=12.5).authenticate()
    request = script.seen[0]
    assert request.headers["x-api-key"] == "ul" + "0" * 40
    assert request.headers["user-agent"] == f"trainhub/{__version__}"
    assert request.extensions["timeout"] == httpx.Timeout(12.5).as_dict()


def test_with_retries_keeps_the_connections_and_takes_its_own_timeout(sleeps: Sleeps) -> None:
    script = Script(*[ok_json({"userId": "u", "name": "n", "isAdmin": False})] * 2)
    hub = mock_hub(script, sleeps, timeout_s=12.5)
    hub.with_retries(0).authenticate()
    hub.with_retries(0, 3.0).authenticate()
    assert [r.extensions["timeout"] for r in script.seen] == [
        httpx.Timeout(12.5).as_dict(),
        httpx.Timeout(3.0).as_dict(),
    ]
    with pytest.raises(ValueError, match="timeout_s"):
        hub.with_retries(0, 0.0)  # not silently the default


def test_503_twice_then_200_is_retried_with_jittered_backoff(sleeps: Sleeps) -> None:
    busy = httpx.Response(503, json={"success": False, "message": "busy"})
    script = Script(busy, busy, ok_json({"agentId": "agent-1"}))
    hub = mock_hub(script, sleeps, rng=random.Random(7))
    assert hub.heartbeat("D" * 20, agent="a") == "agent-1"
    expected_rng = random.Random(7)
    assert sleeps == [backoff_delay_s(n, rng=expected_rng) for n in (0, 1)]
    assert 0 <= sleeps[0] <= 1.0 and 0 <= sleeps[1] <= 2.0
    assert len(script.seen) == 3


def test_a_retryable_status_that_persists_raises_its_api_error(sleeps: Sleeps) -> None:
    html = httpx.Response(502, content=b"<html><body>Bad gateway</body></html>")
    hub = mock_hub(Script(*[html] * 3), sleeps, retries=2)
    with pytest.raises(ApiError) as caught:
        hub.heartbeat("E" * 20, agent="a")
    assert caught.value.status == 502 and "not JSON" in caught.value.message
    assert "Bad gateway" in caught.value.message and len(sleeps) == 2


def test_429_waits_retry_after_then_succeeds(sleeps: Sleeps) -> None:
    limited = httpx.Response(
        429, headers={"Retry-After": "7", "X-RateLimit-Limit": "50", "X-RateLimit-Remaining": "0"}
    )
    hub = mock_hub(Script(limited, ok_json({"agentId": "x"})), sleeps)
    assert hub.heartbeat("F" * 20, agent="a") == "x"
    assert sleeps == [7.0]


def test_the_real_servers_429_is_waited_out_and_then_raised_as_rate_limited(
    settings: Settings, sleeps: Sleeps
) -> None:
    app = create_app(settings.model_copy(update={"rate_limit": "2/minute"}))
    try:
        key = create_users(hub_state(app).db).alice.key
        hub = HubClient(BASE, key, http=TestClient(app), sleep=sleeps, retries=2)
        hub.authenticate()
        hub.authenticate()
        with pytest.raises(RateLimited) as caught:
            hub.authenticate()
    finally:
        hub_state(app).db.dispose()
    waited = caught.value.retry_after_s
    assert waited is not None and 0 < waited <= 60
    assert len(sleeps) == 2 and all(abs(s - waited) <= 1 for s in sleeps)
    assert "rate limit reached (0 of 2 requests left)" in caught.value.message


def test_400_and_422_are_raised_at_once(hub: HubClient, sleeps: Sleeps) -> None:
    with pytest.raises(ApiError) as caught:
        hub.create_model({**MODEL_DOC, "status": "trained"})
    assert caught.value.status == 422 and caught.value.message
    with pytest.raises(ApiError) as caught:
        hub.list_models(limit=0)
    assert caught.value.status == 422
    assert sleeps == []


def test_connection_failures_raise_hub_unreachable_after_every_retry(sleeps: Sleeps) -> None:
    refused = httpx.ConnectError("connection refused")
    script = Script(*[refused] * 4)
    hub = mock_hub(script, sleeps, retries=3)
    with pytest.raises(HubUnreachable, match="after 4 attempt") as caught:
        hub.get_model("G" * 20)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(sleeps) == 3 and len(script.seen) == 4


def test_a_read_timeout_then_success_is_retried(sleeps: Sleeps) -> None:
    script = Script(httpx.ReadTimeout("slow"), ok_json({"agentId": "y"}))
    assert mock_hub(script, sleeps).heartbeat("H" * 20, agent="a") == "y"
    assert len(sleeps) == 1


@pytest.mark.parametrize(
    "create",
    [
        pytest.param(lambda hub: hub.create_model(MODEL_DOC), id="model"),
        pytest.param(lambda hub: hub.create_dataset("shapes", "shapes.zip"), id="dataset"),
    ],
)
def test_a_create_is_resent_only_when_the_server_surely_did_not_act(
    create: Callable[[HubClient], str], sleeps: Sleeps
) -> None:
    script = Script(httpx.ConnectError("refused"), ok_json({"id": "J" * 20}))
    assert create(mock_hub(script, sleeps)) == "J" * 20
    lost = Script(httpx.ReadTimeout("answer lost"))
    with pytest.raises(HubUnreachable, match="after 1 attempt"):
        create(mock_hub(lost, sleeps))
    error = Script(httpx.Response(500, json={"success": False, "message": "boom"}))
    with pytest.raises(ApiError, match="boom"):
        create(mock_hub(error, sleeps))
    assert len(sleeps) == 1


def test_a_non_json_success_raises_api_error_naming_the_problem(sleeps: Sleeps) -> None:
    page = httpx.Response(200, content=b"<html>a login page</html>")
    with pytest.raises(ApiError, match="not what a trainhub server sends") as caught:
        mock_hub(Script(page), sleeps).authenticate()
    assert caught.value.status == 200


class ResetOnce(httpx.BaseTransport):
    """Take the form fields and two file chunks of the first upload, then reset the connection."""

    def __init__(self, real: TestClient) -> None:
        self.real, self.dropped = real, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.dropped and request.url.path.endswith("/upload"):
            self.dropped = True
            assert isinstance(request.stream, httpx.SyncByteStream)
            body = iter(request.stream)
            for _ in range(3):
                next(body)
            raise httpx.WriteError("connection reset by peer")
        response: httpx.Response = self.real.send(request)
        return response


def test_an_upload_is_resent_whole_after_a_dropped_connection(
    app: FastAPI, users: Users, tmp_path: Path, sleeps: Sleeps
) -> None:
    real = TestClient(app, headers={"x-api-key": users.alice.key})
    model_id = real.post("/v1/models", json=MODEL_DOC).json()["data"]["id"]
    http = httpx.Client(transport=ResetOnce(real))
    hub = HubClient(BASE, users.alice.key, http=http, sleep=sleeps)
    path, sha = weights_file(tmp_path / "last.pt", 600_000)
    reported: list[int] = []
    assert hub.upload_weights(model_id, path, epoch=0, progress=reported.append).sha256 == sha
    # the one chunk the network took before the reset, then the whole file again
    assert reported == [CHUNK_BYTES, CHUNK_BYTES, CHUNK_BYTES, 600_000 - 2 * CHUNK_BYTES]
    assert len(sleeps) == 1


class LoseAnswers(httpx.BaseTransport):
    """Pass requests to the real app, but lose the answers of the first `count` DELETEs."""

    def __init__(self, real: TestClient, count: int, error: type[httpx.TransportError]) -> None:
        self.real, self.count, self.error = real, count, error

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response: httpx.Response = self.real.send(request)
        if request.method == "DELETE" and self.count > 0:
            self.count -= 1
            raise self.error("the answer was lost on the way back")
        return response


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_a_delete_whose_answer_was_lost_is_done_when_the_retry_finds_nothing(
    app: FastAPI, users: Users, sleeps: Sleeps, error: type[httpx.TransportError]
) -> None:
    real = TestClient(app, headers={"x-api-key": users.alice.key})
    hub = HubClient(BASE, users.alice.key, http=real, sleep=sleeps)
    dataset_id = hub.create_dataset("shapes", "shapes.zip")
    lossy = HubClient(
        BASE,
        users.alice.key,
        http=httpx.Client(transport=LoseAnswers(real, 2, error)),
        sleep=sleeps,
    )
    lossy.delete_dataset(dataset_id)
    assert len(sleeps) == 2  # two answers lost, the third attempt found it gone
    with pytest.raises(NotFound):
        hub.delete_dataset(dataset_id)  # a first attempt that finds nothing still says so


def test_a_delete_that_never_reached_the_hub_still_reports_not_found(sleeps: Sleeps) -> None:
    gone = httpx.Response(404, json={"success": False, "message": "no dataset with that id"})
    script = Script(httpx.ConnectError("refused"), httpx.Response(503, json={}), gone)
    with pytest.raises(NotFound, match="no dataset"):
        mock_hub(script, sleeps).delete_dataset("K" * 20)
    assert len(script.seen) == 3


# --- uploads through a real socket keep memory flat, whatever the file size -----------------


@pytest.fixture
def socket_hub(app: FastAPI, tmp_path: Path) -> Iterator[httpx.Client]:
    """The real app served by uvicorn on a Unix socket in a thread; a client bound to it."""
    path = tmp_path / "hub.sock"
    server = uvicorn.Server(uvicorn.Config(app, uds=str(path), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    client = httpx.Client(transport=httpx.HTTPTransport(uds=str(path)))
    try:
        yield client
    finally:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)


def test_uploads_stream_with_memory_that_does_not_grow_with_the_file_and_a_verified_sha256(
    socket_hub: httpx.Client, users: Users, tmp_path: Path
) -> None:
    hub = HubClient(BASE, users.alice.key, http=socket_hub)
    model_id = hub.create_model(MODEL_DOC)

    def traced_upload(size_mib: int) -> int:
        """Upload a random file of `size_mib` MiB and return the peak of traced memory."""
        path = tmp_path / f"{size_mib}.pt"
        with path.open("wb") as out:
            for _ in range(size_mib):
                out.write(os.urandom(1024 * 1024))
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        reported: list[int] = []
        tracemalloc.start()
        try:
            stored = hub.upload_weights(
                model_id, path, epoch=size_mib, sha256=sha, progress=reported.append
            )
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert stored.sha256 == sha and stored.size_bytes == size_mib * 1024 * 1024
        assert sum(reported) == size_mib * 1024 * 1024
        return peak_bytes

    small, large = traced_upload(8), traced_upload(40)
    # Client and server share this process, so the peaks cover both: a few of the client's
    # 256 KiB chunks and the server's 512 KiB batches in flight, about 2.5 MB whatever the size.
    assert large < small + 1024 * 1024, f"peak {small} bytes for 8 MiB, {large} for 40 MiB"
    assert large < 40 * 1024 * 1024 // 8, f"peak {large} bytes while uploading 40 MiB"
    assert hub.get_model(model_id).has_last_weights
