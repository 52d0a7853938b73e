"""`ul://` URIs of ultralytics 8.4: a model's weights and a hosted dataset as NDJSON.

docs/protocol/platform.md §4.8 and §9.10, in-process on SQLite and PostgreSQL;
tests/compat/test_ultralytics_platform.py trains from both with the real client.
"""

import io
import json
import tarfile
import zipfile

import pytest

from tests.factories import PNG_1PX, dataset_zip, error, local_path, ok, stored_blobs
from tests.platform import UPLOAD_REQUEST, PlatformClient, complete_data
from tests.testclient import TestClient
from trainhub.protocol.ids import platform_spelling
from trainhub.server.state import hub_state

WEIGHTS = b"trained weights " * 1000


@pytest.fixture
def trainer(app, users) -> PlatformClient:
    return PlatformClient(app, platform_spelling(users.alice.key))


@pytest.fixture
def keyless(app) -> TestClient:
    return TestClient(app)


def trained(trainer: PlatformClient, keyless: TestClient, name: str = "train") -> str:
    """Train a model through the Platform protocol, weights included; return its id."""
    run = trainer.start("alice/my-proj", name)
    body = {"filename": "best.pt", "modelId": run.model_id, "runId": run.run_id}
    answer = trainer.http.post(UPLOAD_REQUEST, json=body).json()
    assert keyless.put(local_path(answer["uploadUrl"]), content=WEIGHTS).status_code == 200
    complete = complete_data(run.run_id, model_path=answer["gcsPath"])
    trainer.ok("training_complete", complete, run.model_id)
    return run.model_id


def unsigned(file: dict) -> dict:
    """A file entry with its URL's signed token (expiry.key.signature) taken out."""
    scheme_host, _, path = file["downloadUrl"].partition("/files/")
    return {**file, "downloadUrl": scheme_host + "/files/" + path.partition("/")[2]}


def upload_dataset(client: TestClient, archive: bytes, filename: str, name: str) -> str:
    dataset_id = ok(client.post("/v1/datasets", json={"meta": {"name": name}}))["id"]
    files = {filename: (filename, archive)}
    ok(client.post(f"/v1/datasets/{dataset_id}/upload", files=files))
    return str(dataset_id)


def ndjson(client: TestClient, keyless: TestClient, owner: str, slug: str) -> list[dict]:
    """Export a dataset as ultralytics does and return its NDJSON lines."""
    answer = client.get(f"/api/datasets/{owner}/{slug}/export")
    assert answer.status_code == 200, answer.text
    url = answer.json()["downloadUrl"]
    assert url.endswith(".ndjson")
    text = keyless.get(local_path(url))
    assert text.status_code == 200 and text.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in text.text.splitlines()]


# ---------------------------------------------------------------- models


def test_a_model_named_by_owner_project_and_name_lists_its_weights(
    trainer, keyless, app, users
) -> None:
    model_id = trained(trainer, keyless)
    files = trainer.http.get("/api/models/alice/my-proj/train/files").json()["files"]
    assert [f["name"].endswith("-best.pt") for f in files] == [True]
    assert files[0]["size"] == len(WEIGHTS) and model_id in files[0]["name"]
    assert keyless.get(local_path(files[0]["downloadUrl"])).content == WEIGHTS
    hub_key = PlatformClient(app, users.alice.key)
    # The signed URL carries an expiry in whole seconds, so compare everything else.
    by_key = hub_key.http.get("/api/models/alice/my-proj/train/files").json()["files"]
    assert [unsigned(f) for f in by_key] == [unsigned(f) for f in files]
    project_id = ok(
        TestClient(app, headers={"x-api-key": users.alice.key}).get(f"/v1/models/{model_id}")
    )["projectId"]
    by_ids = f"/api/models/{users.alice.id}/{project_id}/{model_id}/files"
    assert [f["name"] for f in trainer.http.get(by_ids).json()["files"]] == [files[0]["name"]]


def test_a_private_model_is_404_to_others_and_a_public_one_readable(
    trainer, keyless, alice, app, users
) -> None:
    model_id = trained(trainer, keyless)
    bob = PlatformClient(app, users.bob.key)
    answer = bob.http.get("/api/models/alice/my-proj/train/files")
    assert error(answer, 404) == answer.json()["error"]
    ok(alice.patch(f"/v1/models/{model_id}", json={"public": True}))
    files = bob.http.get("/api/models/alice/my-proj/train/files").json()["files"]
    assert keyless.get(local_path(files[0]["downloadUrl"])).content == WEIGHTS


def test_unknown_names_are_404_and_a_model_without_weights_lists_none(trainer) -> None:
    trainer.start("alice/my-proj", "fresh")
    assert trainer.http.get("/api/models/alice/my-proj/fresh/files").json() == {"files": []}
    for path in ("alice/my-proj/nothing", "alice/nothing/fresh", "nobody/my-proj/fresh"):
        error(trainer.http.get(f"/api/models/{path}/files"), 404)


# ---------------------------------------------------------------- datasets


def test_a_hosted_dataset_exports_as_ndjson_with_signed_image_urls(trainer, keyless, alice) -> None:
    archive = dataset_zip()
    upload_dataset(alice, archive, "shapes.zip", "shapes")
    first, *images = ndjson(trainer.http, keyless, "alice", "shapes")
    assert first == {"type": "dataset", "task": "detect", "class_names": {"0": "box"}}
    assert sorted(i["split"] for i in images) == ["train", "val"]
    members = zipfile.ZipFile(io.BytesIO(archive))
    for image in images:
        assert image["type"] == "image" and image["file"] == "a.png"
        assert image["annotations"] == {"boxes": [[0, 0.5, 0.5, 0.2, 0.2]]}
        got = keyless.get(local_path(image["url"]))
        assert got.status_code == 200
        assert got.content == members.read(f"shapes/images/{image['split']}/a.png")


def test_a_classification_tarball_exports_its_classes(trainer, keyless, alice) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for split, klass in (("train", "cat"), ("train", "dog"), ("val", "cat"), ("val", "dog")):
            info = tarfile.TarInfo(f"pets/{split}/{klass}/{split}-{klass}.png")
            info.size = len(PNG_1PX)
            tar.addfile(info, io.BytesIO(PNG_1PX))
    upload_dataset(alice, buffer.getvalue(), "pets.tar.gz", "Pets")
    first, *images = ndjson(trainer.http, keyless, "alice", "pets")
    assert first["task"] == "classify" and first["class_names"] == {"0": "cat", "1": "dog"}
    labels = {(i["split"], i["file"]): i["annotations"]["classification"] for i in images}
    assert labels[("train", "train-dog.png")] == [1] and labels[("val", "val-cat.png")] == [0]
    assert all(i["width"] == 1 and i["height"] == 1 for i in images)


def test_an_export_is_built_once_and_goes_with_its_version_and_its_dataset(
    trainer, keyless, alice, app
) -> None:
    data_dir = hub_state(app).settings.data_dir
    dataset_id = upload_dataset(alice, dataset_zip(), "shapes.zip", "shapes")
    before = stored_blobs(data_dir)
    ndjson(trainer.http, keyless, "alice", "shapes")
    built = stored_blobs(data_dir)
    assert len(built) == len(before) + 3  # two images and the manifest
    ndjson(trainer.http, keyless, "alice", "shapes")
    assert stored_blobs(data_dir) == built
    files = {"shapes.zip": ("shapes.zip", dataset_zip())}
    ok(alice.post(f"/v1/datasets/{dataset_id}/upload", files=files))  # a new version
    assert len(stored_blobs(data_dir)) == len(before)  # the old archive and its export went
    ndjson(trainer.http, keyless, "alice", "shapes")
    ok(alice.delete(f"/v1/datasets/{dataset_id}", params={"hard": "true"}))
    assert stored_blobs(data_dir) == []


def test_a_private_dataset_and_a_stale_link_are_404(trainer, keyless, alice, app, users) -> None:
    upload_dataset(alice, dataset_zip(), "shapes.zip", "shapes")
    bob = PlatformClient(app, users.bob.key)
    error(bob.http.get("/api/datasets/alice/shapes/export"), 404)
    url = trainer.http.get("/api/datasets/alice/shapes/export").json()["downloadUrl"]
    forged = url.replace("/ndjson/", "/ndjson/1.x")
    error(keyless.get(local_path(forged)), 404)
    error(trainer.http.get("/api/datasets/alice/nothing/export"), 404)
