"""A new dataset version that keeps the old top-level folder name is stored, with a warning."""

from tests.factories import DATASET_YAML, dataset_zip, ok
from tests.integration.test_web import page_token
from tests.integration.test_web_uploads import alice_web  # noqa: F401
from tests.integration.test_web_uploads import upload as web_upload


def upload(client, dataset_id: str, archive: bytes):
    files = {"shapes.zip": ("shapes.zip", archive)}
    return client.post(f"/v1/datasets/{dataset_id}/upload", files=files)


def test_reusing_the_top_level_folder_name_for_a_new_version_warns(alice) -> None:
    dataset_id = ok(alice.post("/v1/datasets", json={"meta": {"name": "shapes"}}))["id"]
    first = upload(alice, dataset_id, dataset_zip("shapes"))
    assert "layout" in first.json()["message"]
    second = upload(alice, dataset_id, dataset_zip("shapes", DATASET_YAML + "# v2\n"))
    assert "same name as the previous version" in second.json()["message"]
    assert ok(second)["warning"] is not None
    third = upload(alice, dataset_id, dataset_zip("shapes-v3", DATASET_YAML))
    assert ok(third)["warning"] is None
    assert "layout" in third.json()["message"]


def test_uploading_the_same_archive_again_does_not_warn(alice) -> None:
    dataset_id = ok(alice.post("/v1/datasets", json={"meta": {"name": "shapes"}}))["id"]
    archive = dataset_zip("shapes")
    ok(upload(alice, dataset_id, archive))
    assert ok(upload(alice, dataset_id, archive))["warning"] is None


def test_a_version_uploaded_from_the_dashboard_counts_like_one_from_the_api(
    alice,
    alice_web,  # noqa: F811
) -> None:
    """The dashboard and the API store a version the same way (they once had two copies)."""
    created = web_upload(
        alice_web, "shapes.zip", dataset_zip("shapes"), token=page_token(alice_web)
    )
    dataset_id = created.json()["data"]["id"]
    second = upload(alice, dataset_id, dataset_zip("shapes", DATASET_YAML + "# v2\n"))
    assert ok(second)["warning"] is not None
    assert "same name as the previous version" in second.json()["message"]
