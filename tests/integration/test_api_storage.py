"""The API on both storage backends: the local folder and a bucket on SeaweedFS.

The flows of test_weights, test_resumable_uploads and test_datasets run on each backend (the app
spools S3 uploads in `<data_dir>/spool`): weights and signed downloads with ranges, tus in parts,
a dataset archive inspected before it is published, deletes and /healthz. Then what only a
bucket has: presigned downloads, a bucket that fails, and two replicas sharing database and
bucket.
"""

import base64
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import (
    Users,
    create_model,
    create_users,
    dataset_zip,
    error,
    local_path,
    ok,
    upload_weights,
    weights_file,
)
from tests.s3 import Bucket
from tests.seaweed import S3FaultProxy, start_fault_proxy
from tests.servers import free_port
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.errors import ConflictError
from trainhub.server.services import uploads
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state

MIB = 1024 * 1024
ONLY_S3 = pytest.mark.parametrize("storage_kind", ["seaweedfs"], indirect=True)
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, storage_url: str | None) -> Settings:
    return make_settings(tmp_path, database_url, storage_url=storage_url)


def stored(app: FastAPI) -> list[str]:
    """Return the keys of every published blob, sorted."""
    return sorted(blob.key for blob in hub_state(app).storage.iter_blobs())


def in_flight(app: FastAPI) -> list[str]:
    """Return what uploads left behind: temp files, unfinished multipart uploads, tus files."""
    storage = hub_state(app).storage
    return [leftover.what for leftover in storage.leftovers()] + [
        f"partial/{item.upload_id}" for item in storage.partials()
    ]


def read_model(client: TestClient, model_id: str) -> dict:
    return ok(client.get(f"/v1/models/{model_id}"))


def tus_create(client: TestClient, model_id: str, data: bytes) -> str:
    fields = {"modelId": model_id, "type": "final", "epoch": "2", "map": "0.5"}
    fields["sha256"] = hashlib.sha256(data).hexdigest()
    metadata = ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())
    answer = client.post(
        "/v1/uploads",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata},
    )
    assert answer.status_code == 201, answer.text
    return local_path(answer.headers["location"])


def tus_patch(client: TestClient, location: str, offset: int, chunk: bytes):
    headers = {
        **TUS,
        "Upload-Offset": str(offset),
        "Content-Type": "application/offset+octet-stream",
    }
    return client.patch(location, content=chunk, headers=headers)


def test_weights_are_stored_and_download_whole_and_in_ranges(
    alice, anon, app: FastAPI, settings: Settings, storage_kind: str, tmp_path: Path
) -> None:
    model_id = create_model(alice)
    last, last_sha = weights_file(tmp_path / "last.pt", size=5000)
    best, best_sha = weights_file(tmp_path / "best.pt", size=300_000)
    ok(upload_weights(alice, model_id, last, epoch=2))
    ok(upload_weights(alice, model_id, best, final=True, epoch=2))
    assert stored(app) == [
        f"models/{model_id}/best-{best_sha}",
        f"models/{model_id}/last-{last_sha}",
    ]
    assert in_flight(app) == []
    assert (settings.data_dir / "blobs").exists() is (storage_kind == "local")

    record = read_model(alice, model_id)
    whole = anon.get(record["weights"])
    assert whole.status_code == 200 and whole.content == best.read_bytes()
    assert whole.headers["etag"] == f'"{best_sha}"'
    assert hashlib.sha256(whole.content).hexdigest() == best_sha
    part = anon.get(record["weights"], headers={"range": "bytes=1000-199999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == "bytes 1000-199999/300000"
    assert part.content == best.read_bytes()[1000:200000]
    tail = anon.get(record["resume"], headers={"range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == last.read_bytes()[-10:]
    head = anon.head(record["resume"])
    assert head.status_code == 200 and head.headers["content-length"] == "5000"


def test_a_resumable_upload_collects_where_every_replica_reaches_it_then_is_published(
    alice, anon, app: FastAPI, storage_kind: str
) -> None:
    model_id = create_model(alice)
    data = os.urandom(300_000)
    sha256 = hashlib.sha256(data).hexdigest()
    location = tus_create(alice, model_id, data)
    upload_id = location.rsplit("/", 1)[1]
    for offset in (0, 100_000, 200_000):
        assert alice.head(location, headers=TUS).headers["upload-offset"] == str(offset)
        # the local folder's file; on a bucket, the multipart upload, then the tail object
        expected = 1 if storage_kind == "local" or offset == 0 else 2
        assert in_flight(app) == [f"partial/{upload_id}"] * expected
        assert stored(app) == []
        answer = tus_patch(alice, location, offset, data[offset : offset + 100_000])
        assert answer.status_code == 204, answer.text
    assert stored(app) == [f"models/{model_id}/best-{sha256}"]
    assert in_flight(app) == []
    download = anon.get(read_model(alice, model_id)["weights"])
    assert hashlib.sha256(download.content).hexdigest() == sha256


def test_two_requests_appending_at_one_offset_store_only_one(
    alice, app: FastAPI, users: Users, storage_kind: str
) -> None:
    """As two replicas would, given the same row: the second is refused with 409."""
    data = os.urandom(12 * MIB)
    model_id = create_model(alice)
    location = tus_create(alice, model_id, data)
    db, storage = hub_state(app).db, hub_state(app).storage
    row = uploads.load_upload(db, location.rsplit("/", 1)[1], users.alice.id)
    first = uploads.Appending(db, storage, row, all_or_nothing=False)
    try:
        if storage_kind == "local":  # the file is locked by the first
            with pytest.raises(ConflictError, match="another request is appending"):
                uploads.Appending(db, storage, row, all_or_nothing=False)
            return
        second = uploads.Appending(db, storage, row, all_or_nothing=False)
        first.write([data[: 5 * MIB]])  # a part, recorded: the offset moves to 5 MiB
        with pytest.raises(ConflictError, match="appended to this upload meanwhile"):
            second.write([bytes(5 * MIB)])  # its own part number; its record is refused
        second.close()
        assert alice.head(location, headers=TUS).headers["upload-offset"] == str(5 * MIB)
    finally:
        first.close()
    assert tus_patch(alice, location, 5 * MIB, data[5 * MIB :]).status_code == 204
    assert stored(app) == [f"models/{model_id}/best-{hashlib.sha256(data).hexdigest()}"]


def test_a_dataset_archive_is_inspected_before_it_is_published(alice, anon, app: FastAPI) -> None:
    body = {"meta": {"name": "shapes"}, "filename": "shapes.zip"}
    dataset_id = ok(alice.post("/v1/datasets", json=body))["id"]
    refused = alice.post(
        f"/v1/datasets/{dataset_id}/upload", files={"shapes.zip": ("shapes.zip", b"not a zip")}
    )
    error(refused, 422)
    assert stored(app) == [] and in_flight(app) == []

    data = dataset_zip("shapes")
    answer = alice.post(
        f"/v1/datasets/{dataset_id}/upload", files={"shapes.zip": ("shapes.zip", data)}
    )
    record = ok(answer)
    assert record["layout"] == "detect" and record["size_bytes"] == len(data)
    assert stored(app) == [f"datasets/{dataset_id}/{record['sha256']}"]
    assert in_flight(app) == []
    download = anon.get(local_path(record["url"]))
    assert download.status_code == 200 and download.content == data


def test_deleting_a_model_removes_its_blobs(alice, app: FastAPI, tmp_path: Path) -> None:
    model_id = create_model(alice)
    kept_id = create_model(alice)
    for target in (model_id, kept_id):
        ok(upload_weights(alice, target, weights_file(tmp_path / "w.pt")[0], epoch=1))
        ok(upload_weights(alice, target, weights_file(tmp_path / "w.pt")[0], final=True))
    assert len(stored(app)) == 4
    assert ok(alice.delete(f"/v1/models/{model_id}?hard=True"))["hard"] is True
    remaining = stored(app)
    assert len(remaining) == 2 and all(f"/{kept_id}/" in key for key in remaining)


def test_a_new_checkpoint_replaces_the_old_blob(alice, app: FastAPI, tmp_path: Path) -> None:
    model_id = create_model(alice)
    ok(upload_weights(alice, model_id, weights_file(tmp_path / "a.pt")[0], epoch=1))
    path, sha256 = weights_file(tmp_path / "b.pt")
    ok(upload_weights(alice, model_id, path, epoch=2))
    ok(upload_weights(alice, model_id, path, epoch=2))  # sent again: the same blob, kept
    assert stored(app) == [f"models/{model_id}/last-{sha256}"]


@ONLY_S3
def test_health_reports_the_bucket_and_names_no_bucket_when_it_fails(
    anon, s3_bucket: Bucket
) -> None:
    healthy = ok(anon.get("/healthz"))
    assert healthy["database"] == healthy["storage"] == "ok"
    assert healthy["queue"] == {"status": "ok", "depth": 0, "workers": 0}
    assert s3_bucket.object_keys() == []  # the probe object is removed again
    s3_bucket.client.delete_bucket(Bucket=s3_bucket.name)
    response = anon.get("/healthz")
    assert "storage" in error(response, 503)
    assert s3_bucket.name not in response.text


def test_a_blob_gone_from_storage_answers_404_not_500(
    alice, anon, app: FastAPI, tmp_path: Path
) -> None:
    model_id = create_model(alice)
    ok(upload_weights(alice, model_id, weights_file(tmp_path / "w.pt")[0], final=True))
    (key,) = stored(app)
    hub_state(app).storage.delete(key)
    url = read_model(alice, model_id)["weights"]
    assert "not found" in error(anon.get(url), 404)
    assert anon.head(url).status_code == 404


def test_an_unreachable_bucket_answers_503_and_leaves_no_spool_file(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    down = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        tmp_path, database_url, storage_url=f"s3://{s3_bucket.name}/hub?endpoint_url={down}"
    )
    application = create_app(settings)
    try:
        people = create_users(hub_state(application).db)
        with TestClient(application, headers={"x-api-key": people.alice.key}) as client:
            model_id = create_model(client)
            answer = upload_weights(client, model_id, weights_file(tmp_path / "w.pt")[0])
            assert "storage is unavailable" in error(answer, 503)
            assert down not in answer.text and s3_bucket.name not in answer.text
            assert read_model(client, model_id)["has_last_weights"] is False
            assert "storage" in error(client.get("/healthz"), 503)
    finally:
        hub_state(application).db.dispose()
    spool = settings.data_dir / "spool"
    assert [p for p in spool.rglob("*") if p.is_file()] == []


@pytest.fixture
def replica(
    tmp_path: Path, database_url: str, settings: Settings, app: FastAPI
) -> Iterator[FastAPI]:
    """A second server on the same database, bucket and secret, with a spool of its own."""
    assert settings.secret_key is not None and settings.storage_url is not None
    other = make_settings(
        tmp_path / "replica",
        database_url,
        storage_url=settings.storage_url,
        secret_key=settings.secret_key.get_secret_value(),
    )
    application = create_app(other)
    yield application
    hub_state(application).db.dispose()


@ONLY_S3
def test_a_second_replica_serves_what_the_first_stored(
    alice, replica: FastAPI, users: Users, tmp_path: Path
) -> None:
    model_id = create_model(alice)
    path, sha256 = weights_file(tmp_path / "best.pt", size=50_000)
    ok(upload_weights(alice, model_id, path, final=True))
    with TestClient(replica, headers={"x-api-key": users.alice.key}) as other:
        download = other.get(read_model(other, model_id)["weights"])
        assert download.status_code == 200 and download.content == path.read_bytes()
        assert download.headers["etag"] == f'"{sha256}"'
        ok(other.delete(f"/v1/models/{model_id}?hard=True"))
    error(alice.get(f"/v1/models/{model_id}"), 404)


@ONLY_S3
def test_a_resumable_upload_started_on_one_replica_resumes_on_the_other(
    alice, replica: FastAPI, users: Users, s3_bucket: Bucket
) -> None:
    model_id = create_model(alice)
    data = os.urandom(7 * 1024 * 1024 + 100)  # a full 5 MiB part, then the tail and the rest
    location = tus_create(alice, model_id, data)
    assert tus_patch(alice, location, 0, data[:6_000_000]).status_code == 204
    with TestClient(replica, headers={"x-api-key": users.alice.key}) as other:
        assert other.head(location, headers=TUS).headers["upload-offset"] == "6000000"
        # a stale offset is refused, by either replica
        assert "does not match" in error(tus_patch(other, location, 0, data), 409)
        assert tus_patch(other, location, 6_000_000, data[6_000_000:]).status_code == 204
        download = other.get(read_model(other, model_id)["weights"])
        assert download.content == data
    assert s3_bucket.object_keys() == [
        f"hub/models/{model_id}/best-{hashlib.sha256(data).hexdigest()}"
    ]
    assert s3_bucket.unfinished_multipart_uploads() == []


def test_presigned_downloads_redirect_a_checked_link_to_the_bucket(
    tmp_path: Path, database_url: str, s3_bucket: Bucket
) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        storage_url=f"s3://{s3_bucket.name}/hub",
        s3_presigned_downloads=True,
        s3_public_endpoint=s3_bucket.endpoint_url,
    )
    application = create_app(settings)
    try:
        people = create_users(hub_state(application).db)
        with (
            TestClient(application, headers={"x-api-key": people.alice.key}) as alice,
            TestClient(application) as anon,
        ):
            model_id = create_model(alice)
            path, sha256 = weights_file(tmp_path / "best.pt", size=50_000)
            ok(upload_weights(alice, model_id, path, final=True))
            link = read_model(alice, model_id)["weights"]
            answer = anon.get(link, follow_redirects=False)
            assert answer.status_code == 307, answer.text
            location = answer.headers["location"]
            assert location.startswith(f"{s3_bucket.endpoint_url}/{s3_bucket.name}/hub/models/")
            fetched = httpx.get(location)
            assert fetched.status_code == 200 and fetched.content == path.read_bytes()
            ranged = httpx.get(location, headers={"range": "bytes=10-19"})
            assert ranged.status_code == 206 and ranged.content == path.read_bytes()[10:20]
            assert anon.head(link).status_code == 200  # HEAD is answered by the server
            cached = anon.get(link, headers={"if-none-match": f'"{sha256}"'})
            assert cached.status_code == 304
            # the link is still checked on every request: a deleted model redirects no more
            ok(alice.delete(f"/v1/models/{model_id}?hard=True"))
            error(anon.get(link, follow_redirects=False), 404)
    finally:
        hub_state(application).db.dispose()


@contextmanager
def behind_fault_proxy(
    tmp_path: Path, database_url: str, s3_bucket: Bucket
) -> Iterator[tuple[FastAPI, TestClient, S3FaultProxy]]:
    """An app whose bucket is reached through a fault proxy, and alice's client to it."""
    with start_fault_proxy(s3_bucket.endpoint_url) as proxy:
        settings = make_settings(
            tmp_path,
            database_url,
            storage_url=f"s3://{s3_bucket.name}/hub?endpoint_url={proxy.url}",
            max_upload_bytes=64 * 1024**2,
        )
        application = create_app(settings)
        try:
            people = create_users(hub_state(application).db)
            with TestClient(application, headers={"x-api-key": people.alice.key}) as alice:
                yield application, alice, proxy
        finally:
            hub_state(application).db.dispose()


def test_a_bucket_failing_mid_upload_retries_the_part_or_answers_a_clean_503(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with behind_fault_proxy(tmp_path, database_url, s3_bucket) as (application, alice, proxy):
        model_id = create_model(alice)
        big, sha256 = weights_file(tmp_path / "big.pt", size=17 * 1024**2)
        once = proxy.fail(lambda r: r.is_upload_part(), times=1)
        ok(upload_weights(alice, model_id, big, final=True))
        assert once.hits == 1
        assert stored(application) == [f"models/{model_id}/best-{sha256}"]
        assert s3_bucket.read(f"hub/models/{model_id}/best-{sha256}") == big.read_bytes()

        always = _fail_every_part(proxy)
        other, _ = weights_file(tmp_path / "other.pt", size=17 * 1024**2)
        answer = upload_weights(alice, model_id, other, epoch=3)
        assert "storage is unavailable" in error(answer, 503)
        assert always.hits >= 2
        assert read_model(alice, model_id)["has_last_weights"] is False
        assert stored(application) == [f"models/{model_id}/best-{sha256}"]
        assert in_flight(application) == []  # the multipart upload was aborted


def test_a_bucket_failing_mid_patch_keeps_the_parts_stored_and_the_upload_resumes(
    tmp_path: Path, database_url: str, s3_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with behind_fault_proxy(tmp_path, database_url, s3_bucket) as (application, alice, proxy):
        model_id = create_model(alice)
        data = os.urandom(12 * MIB)
        location = tus_create(alice, model_id, data)
        once = proxy.fail(lambda r: r.is_upload_part(), times=1)
        assert tus_patch(alice, location, 0, data[: 6 * MIB]).status_code == 204
        assert once.hits == 1  # botocore sent the part again

        always = _fail_every_part(proxy)
        answer = tus_patch(alice, location, 6 * MIB, data[6 * MIB :])
        assert "storage is unavailable" in error(answer, 503)
        assert always.hits >= 2
        # the part and the tail stored before are kept; nothing is published
        assert alice.head(location, headers=TUS).headers["upload-offset"] == str(6 * MIB)
        assert stored(application) == []

        proxy.faults.remove(always)
        assert tus_patch(alice, location, 6 * MIB, data[6 * MIB :]).status_code == 204
        sha256 = hashlib.sha256(data).hexdigest()
        assert stored(application) == [f"models/{model_id}/best-{sha256}"]
        assert s3_bucket.read(f"hub/models/{model_id}/best-{sha256}") == data
        assert in_flight(application) == []


def _fail_every_part(proxy: S3FaultProxy):
    return proxy.fail(lambda r: r.is_upload_part())
