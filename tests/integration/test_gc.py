"""The clean-up (services/gc.py) on the local folder and on SeaweedFS, in process.

What a row names stays, soft-deleted objects included; what nothing names goes once it is older
than the grace period; a dry run removes nothing. `tests/e2e/test_gc_after_kill.py` kills real
servers mid-upload and runs `trainhub gc` after them.
"""

import base64
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.conftest import make_settings
from tests.factories import create_model, ok, upload_weights, weights_file
from tests.s3 import Bucket
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.services.gc import collect_garbage, find_garbage
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state

TUS = {"Tus-Resumable": "1.0.0"}
NOW = timedelta(0)


@pytest.fixture
def settings(tmp_path: Path, database_url: str, storage_url: str | None) -> Settings:
    return make_settings(tmp_path, database_url, storage_url=storage_url)


def stored(app: FastAPI) -> list[str]:
    return sorted(blob.key for blob in hub_state(app).storage.iter_blobs())


def publish_orphan(app: FastAPI, key: str) -> None:
    writer = hub_state(app).storage.create_writer()
    writer.write(b"nobody names me")
    writer.publish(key)


def test_orphaned_blobs_go_and_referenced_ones_stay(alice, app: FastAPI, tmp_path: Path) -> None:
    kept = create_model(alice)
    hidden = create_model(alice)
    for model_id in (kept, hidden):
        ok(upload_weights(alice, model_id, weights_file(tmp_path / "w.pt")[0], final=True))
    ok(alice.delete(f"/v1/models/{hidden}"))  # soft: its files are kept
    dataset = ok(alice.post("/v1/datasets", json={"meta": {"name": "d"}}))["id"]
    referenced = stored(app)
    publish_orphan(app, f"models/{kept}/last-{'0' * 64}")
    publish_orphan(app, f"datasets/{dataset}/{'1' * 64}")
    publish_orphan(app, "healthz/probe-0123456789abcdef")  # a probe a killed server left

    assert (
        find_garbage(hub_state(app).db, hub_state(app).storage) == []
    )  # younger than the grace period
    dry = collect_garbage(hub_state(app).db, hub_state(app).storage, grace=NOW, dry_run=True)
    assert sorted(item.kind for item in dry.found) == ["orphaned blob"] * 3
    assert dry.removed == [] and len(stored(app)) == len(referenced) + 3
    assert dry.summary() == "3 orphaned blobs"

    done = collect_garbage(hub_state(app).db, hub_state(app).storage, grace=NOW)
    assert len(done.removed) == 3 and done.failed == []
    assert stored(app) == referenced
    assert collect_garbage(hub_state(app).db, hub_state(app).storage, grace=NOW).found == []


def test_idle_uploads_expire_and_stray_files_and_temp_files_go(alice, app: FastAPI) -> None:
    model_id = create_model(alice)
    fields = "modelId " + base64.b64encode(model_id.encode()).decode()
    fields += ",type ZmluYWw=,epoch MQ==,map MC41"
    created = alice.post(
        "/v1/uploads", headers={**TUS, "Upload-Length": "100", "Upload-Metadata": fields}
    )
    assert created.status_code == 201, created.text
    upload_id = created.headers["location"].rsplit("/", 1)[1]
    storage = hub_state(app).storage
    storage.start_partial("S" * 20)  # what a resumable upload stored, and its row is gone
    writer = storage.create_writer()
    writer.write(b"an upload in flight")

    young = collect_garbage(hub_state(app).db, storage, dry_run=True)
    assert young.found == []
    found = collect_garbage(hub_state(app).db, storage, grace=NOW, dry_run=True).found
    assert sorted(item.kind for item in found) == ["leftover", "stray upload"]  # not the upload
    expired = collect_garbage(hub_state(app).db, storage, upload_expiry=NOW, grace=NOW)
    assert sorted(item.kind for item in expired.removed) == [
        "expired upload",
        "leftover",
        "stray upload",
    ]
    assert storage.partials() == [] and storage.leftovers() == []
    assert alice.head(f"/v1/uploads/{upload_id}", headers=TUS).status_code == 404
    writer.abort()


def test_the_server_cleans_up_on_its_own_every_interval(
    tmp_path: Path, database_url: str, storage_url: str | None
) -> None:
    settings = make_settings(
        tmp_path, database_url, storage_url=storage_url, gc_interval_s=0.2, gc_grace_s=0
    )
    app = create_app(settings)
    try:
        with TestClient(app):  # the lifespan starts the clean-up task
            publish_orphan(app, "models/x/best-" + "2" * 64)
            deadline = time.monotonic() + 30
            while stored(app) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert stored(app) == []
    finally:
        hub_state(app).db.dispose()


def test_no_clean_up_runs_when_the_interval_is_zero(tmp_path: Path, database_url: str) -> None:
    app = create_app(make_settings(tmp_path, database_url, gc_interval_s=0, gc_grace_s=0))
    try:
        with TestClient(app):
            publish_orphan(app, "models/x/best-" + "3" * 64)
            time.sleep(0.5)  # several intervals of the test above: nothing may run
            assert stored(app) == ["models/x/best-" + "3" * 64]
    finally:
        hub_state(app).db.dispose()


def test_what_the_server_did_not_make_is_never_collected(
    app: FastAPI, storage_kind: str, request: pytest.FixtureRequest
) -> None:
    storage = hub_state(app).storage
    publish_orphan(app, "models/x/best-" + "4" * 64)
    if storage_kind == "local":
        root = storage.root  # type: ignore[attr-defined]
        (root / "notes").mkdir()
        (root / "notes" / "readme").write_text("the operator's")
        (root / "README").write_text("the operator's")
        foreign = [root / "notes" / "readme", root / "README"]
    else:
        bucket: Bucket = request.getfixturevalue("s3_bucket")
        for name in ("hub/logs/2026/app.log", "hub/other/x", "elsewhere/models/y/z"):
            bucket.client.put_object(Bucket=bucket.name, Key=name, Body=b"not the hub's")
        started = bucket.client.create_multipart_upload(Bucket=bucket.name, Key="hub/logs/big")
        foreign = []
    done = collect_garbage(hub_state(app).db, storage, grace=NOW)
    assert [item.what for item in done.removed] == [f"blob models/x/best-{'4' * 64} (15 bytes)"]
    if storage_kind == "local":
        assert all(path.is_file() for path in foreign)
    else:
        assert bucket.object_keys() == [
            "elsewhere/models/y/z",
            "hub/logs/2026/app.log",
            "hub/other/x",
        ]
        assert bucket.unfinished_multipart_uploads() == ["hub/logs/big"]
        bucket.client.abort_multipart_upload(
            Bucket=bucket.name, Key="hub/logs/big", UploadId=started["UploadId"]
        )


def test_export_files_staged_weights_and_dataset_export_blobs_stay(
    alice, app: FastAPI, users
) -> None:
    """Rows of the export queue, of 8.4 uploads and of NDJSON dataset exports name blobs too."""
    from sqlalchemy import select

    from trainhub.server.db.tables import (
        DatasetExportRow,
        DatasetRow,
        ExportRow,
        ModelRow,
        StagedUploadRow,
        utcnow,
    )

    model_id = create_model(alice)
    dataset_id = ok(alice.post("/v1/datasets", json={"meta": {"name": "d"}}))["id"]
    named = {
        "export": f"exports/{model_id}/e{'0' * 19}-{'2' * 64}",
        "staged": f"models/{model_id}/platform-u{'0' * 19}-{'3' * 16}",
        "manifest": f"datasets/{dataset_id}/ndjson-{'4' * 16}.json",
        "image": f"datasets/{dataset_id}/img-{'5' * 64}.jpg",
    }
    for key in named.values():
        publish_orphan(app, key)
    db = hub_state(app).db
    with db.write() as session:
        model_seq = session.scalars(select(ModelRow.seq).where(ModelRow.id == model_id)).one()
        dataset_seq = session.scalars(
            select(DatasetRow.seq).where(DatasetRow.id == dataset_id)
        ).one()
        session.add(
            ExportRow(
                id=f"e{'0' * 19}",
                model_seq=model_seq,
                requested_by=users.alice.id,
                format="onnx",
                weights_key=f"models/{model_id}/final-{'6' * 64}",
                weights_sha256="6" * 64,
                status="done",
                blob_key=named["export"],
            )
        )
        session.add(
            StagedUploadRow(
                id=f"u{'0' * 19}",
                model_seq=model_seq,
                filename="best.pt",
                state="received",
                blob_key=named["staged"],
                expires_at=utcnow() + timedelta(hours=1),
            )
        )
        session.add(
            DatasetExportRow(
                dataset_seq=dataset_seq,
                archive_sha256="7" * 64,
                manifest_key=named["manifest"],
                blob_keys=[named["image"]],
            )
        )
    orphan = f"exports/{model_id}/e{'1' * 19}-{'8' * 64}"  # an export file no row names
    publish_orphan(app, orphan)

    done = collect_garbage(db, hub_state(app).storage, grace=NOW)
    assert [item.what.split()[1] for item in done.removed] == [orphan]
    assert set(named.values()) <= set(stored(app))
