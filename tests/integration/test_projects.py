"""Projects: CRUD, lists, the cover image, and models in a project.

See docs/protocol/hub-v1.md §5.18-§5.19.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from tests.blobs import stored_files
from tests.conftest import make_settings
from tests.factories import PNG_1PX, Users, create_model, error, local_path, ok, published_name
from tests.multipart import Part, multipart_body
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state

JPEG_HEAD = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(64)


def create_project(client: TestClient, name: str = "birds", **doc: Any) -> str:
    """Create a project and return its id."""
    return str(ok(client.post("/v1/projects", json={"meta": {"name": name}, **doc}))["id"])


def upload_cover(client: TestClient, project_id: str, data: bytes, name: str = "cover.png") -> Any:
    """POST a cover image the hub-sdk way: one file part named `file`."""
    return client.post(f"/v1/projects/{project_id}/upload", files={"file": (name, data)})


def test_a_project_is_created_read_back_and_listed(alice) -> None:
    project_id = create_project(alice, description="field birds")
    record = ok(alice.get(f"/v1/projects/{project_id}"))
    assert record["id"] == project_id
    assert record["meta"] == {"name": "birds"}
    assert record["description"] == "field birds"
    assert (record["public"], record["cover"]) == (False, None)
    page = ok(alice.get("/v1/projects", params={"limit": 10}))
    assert page["total"] == 1
    assert [r["id"] for r in page["results"]] == [project_id]
    assert page["lastRecordId"] is None


def test_projects_are_paged_with_a_cursor(alice) -> None:
    ids = [create_project(alice, f"p{i}") for i in range(3)]
    first = ok(alice.get("/v1/projects", params={"limit": 2}))
    assert [r["id"] for r in first["results"]] == [ids[2], ids[1]]
    assert first["lastRecordId"] == ids[1]
    second = ok(alice.get("/v1/projects", params={"limit": 2, "last_doc_id": ids[1]}))
    assert [r["id"] for r in second["results"]] == [ids[0]]
    assert (second["total"], second["lastRecordId"]) == (3, None)


def test_a_private_project_is_invisible_to_others_until_made_public(alice, bob, anon) -> None:
    project_id = create_project(alice)
    error(bob.get(f"/v1/projects/{project_id}"), 404)
    error(anon.get(f"/v1/projects/{project_id}"), 404)
    ok(alice.patch(f"/v1/projects/{project_id}", json={"public": True}))
    assert ok(bob.get(f"/v1/projects/{project_id}"))["public"] is True
    listed = ok(anon.get("/v1/projects", params={"public": "True"}))
    assert [r["id"] for r in listed["results"]] == [project_id]
    error(bob.patch(f"/v1/projects/{project_id}", json={"meta": {"name": "x"}}), 403)
    error(bob.delete(f"/v1/projects/{project_id}"), 403)


def test_patch_renames_a_project_and_keeps_other_fields(alice) -> None:
    project_id = create_project(alice, description="d")
    record = ok(alice.patch(f"/v1/projects/{project_id}", json={"meta": {"name": "renamed"}}))
    assert record["meta"]["name"] == "renamed"
    assert record["description"] == "d"
    assert ok(alice.get(f"/v1/projects/{project_id}"))["meta"]["name"] == "renamed"


def test_soft_and_hard_delete_both_hide_a_project(alice) -> None:
    soft, hard = create_project(alice, "soft"), create_project(alice, "hard")
    ok(alice.delete(f"/v1/projects/{soft}", params={"hard": "False"}))
    ok(alice.delete(f"/v1/projects/{hard}", params={"hard": "True"}))
    error(alice.get(f"/v1/projects/{soft}"), 404)
    error(alice.get(f"/v1/projects/{hard}"), 404)
    assert ok(alice.get("/v1/projects"))["total"] == 0


def test_a_png_cover_is_stored_and_downloadable_without_auth(
    alice, anon, settings: Settings
) -> None:
    project_id = create_project(alice)
    record = ok(upload_cover(alice, project_id, PNG_1PX))
    assert record["cover"].endswith(".png")
    cover = ok(alice.get(f"/v1/projects/{project_id}"))["cover"]
    assert published_name(cover) == published_name(record["cover"])
    download = anon.get(local_path(record["cover"]))
    assert download.status_code == 200
    assert download.content == PNG_1PX
    assert download.headers["content-type"] == "image/png"
    assert len(stored_files(settings)) == 1


def test_a_new_cover_replaces_the_old_one(alice, anon, settings: Settings) -> None:
    project_id = create_project(alice)
    first = ok(upload_cover(alice, project_id, PNG_1PX))["cover"]
    second = ok(upload_cover(alice, project_id, JPEG_HEAD, "cover.jpg"))["cover"]
    assert second.endswith(".jpg")
    assert first != second
    error(anon.get(local_path(first)), 404)
    assert anon.get(local_path(second)).content == JPEG_HEAD
    assert len(stored_files(settings)) == 1


def test_hard_deleting_a_project_removes_its_cover(alice, settings: Settings) -> None:
    project_id = create_project(alice)
    ok(upload_cover(alice, project_id, PNG_1PX))
    ok(alice.delete(f"/v1/projects/{project_id}", params={"hard": "True"}))
    assert stored_files(settings) == set()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("cover.png", b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
        ("cover.png", b"#!/bin/sh\nrm -rf /\n"),
        ("cover.png", b""),
    ],
    ids=["svg", "script", "empty"],
)
def test_a_cover_that_is_not_an_image_is_refused(alice, settings: Settings, name, data) -> None:
    project_id = create_project(alice)
    error(upload_cover(alice, project_id, data, name), 422)
    assert ok(alice.get(f"/v1/projects/{project_id}"))["cover"] is None
    assert stored_files(settings) == set()


def test_a_cover_in_another_part_than_file_is_refused(alice, settings: Settings) -> None:
    project_id = create_project(alice)
    body, headers = multipart_body([Part("image", PNG_1PX, "cover.png")])
    response = alice.post(f"/v1/projects/{project_id}/upload", content=body, headers=headers)
    assert response.status_code in (400, 422)
    error(response, response.status_code)
    assert stored_files(settings) == set()


@pytest.fixture
def small_image_app(tmp_path: Path, database_url: str, users: Users) -> Iterator[FastAPI]:
    """A second app on the same database whose cover images may be at most 1 KiB."""
    application = create_app(make_settings(tmp_path / "small", database_url, max_image_bytes=1024))
    yield application
    hub_state(application).db.dispose()


def test_a_cover_over_max_image_bytes_is_refused_with_413(
    small_image_app: FastAPI, users: Users, alice
) -> None:
    project_id = create_project(alice)
    settings: Settings = hub_state(small_image_app).settings
    with TestClient(small_image_app, headers={"x-api-key": users.alice.key}) as client:
        big = PNG_1PX + bytes(4096)
        error(upload_cover(client, project_id, big), 413)
        ok(upload_cover(client, project_id, PNG_1PX))
    assert len(stored_files(settings)) == 1


def test_a_model_created_in_a_project_shows_the_project(alice) -> None:
    project_id = create_project(alice)
    model_id = create_model(alice, projectId=project_id)
    record = ok(alice.get(f"/v1/models/{model_id}"))
    assert record["project"] == {"id": project_id, "name": "birds"}
    assert record["projectId"] == project_id
    listed = ok(alice.get("/v1/models", params={"projectId": project_id}))
    assert [r["id"] for r in listed["results"]] == [model_id]
    assert "project" in listed["results"][0]
    assert "dataset" in listed["results"][0]


def test_a_model_cannot_join_another_users_project(alice, bob) -> None:
    project_id = create_project(alice, public=True)
    response = bob.post("/v1/models", json={"meta": {"name": "m"}, "projectId": project_id})
    assert response.status_code in (403, 404)
    error(response, response.status_code)
