"""Dashboard uploads in-process: dataset archives (checked like the API's) and project covers."""

import hashlib
import io
import re
import zipfile
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from tests.factories import PNG_1PX, Users, dataset_zip, ok, stored_blobs
from tests.integration.test_web import csrf_of, page_token, sign_in
from tests.testclient import TestClient
from trainhub.server.state import hub_state

XHR = {"accept": "application/json"}


@pytest.fixture
def alice_web(app: FastAPI, users: Users) -> Iterator[TestClient]:
    with sign_in(app, users.alice.key) as client:
        yield client


def upload(client: TestClient, filename: str, data: bytes, *, token: str | None, **fields):
    headers = {**XHR, **({"x-csrf-token": token} if token else {})}
    return client.post(
        "/datasets/upload",
        files={"file": (filename, data, "application/zip")},
        data=fields,
        headers=headers,
    )


def hostile_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../escape.txt", "x")
    return buffer.getvalue()


def test_a_dataset_uploads_from_the_page_and_downloads_intact(alice, alice_web, anon) -> None:
    archive = dataset_zip("shapes")
    answer = upload(alice_web, "shapes.zip", archive, token=page_token(alice_web), name="Shapes")
    record = ok(answer)
    assert record["meta"]["name"] == "Shapes" and record["layout"] == "detect"
    assert record["sha256"] == hashlib.sha256(archive).hexdigest()
    listed = ok(alice.get("/v1/datasets"))["results"]
    assert [d["id"] for d in listed] == [record["id"]]
    page = alice_web.get("/datasets").text
    assert "Shapes" in page and "shapes.zip" in page
    link = re.search(r'href="http://testserver(/files/[^"]+)" download', page)
    assert link
    download = anon.get(link.group(1))
    assert hashlib.sha256(download.content).hexdigest() == record["sha256"]


def test_a_refused_archive_says_why_and_leaves_nothing_behind(app, alice, alice_web) -> None:
    answer = upload(alice_web, "bad.zip", hostile_zip(), token=page_token(alice_web))
    assert answer.status_code == 422
    body = answer.json()
    assert body["success"] is False and ".." in body["message"]
    assert ok(alice.get("/v1/datasets"))["results"] == []
    data_dir = hub_state(app).settings.data_dir
    assert stored_blobs(data_dir) == []


def test_a_form_post_without_script_gets_a_page(alice_web) -> None:
    settings = alice_web.get("/datasets").text
    plain = alice_web.post(
        "/datasets/upload",
        files={"file": ("bad.zip", hostile_zip(), "application/zip")},
        data={"csrf_token": csrf_of(settings)},
        follow_redirects=False,
    )
    assert plain.status_code == 422 and plain.headers["content-type"].startswith("text/html")
    good = alice_web.post(
        "/datasets/upload",
        files={"file": ("shapes.zip", dataset_zip(), "application/zip")},
        data={"csrf_token": csrf_of(settings)},
        follow_redirects=False,
    )
    assert good.status_code == 303 and good.headers["location"] == "/datasets?notice=uploaded"
    assert "The dataset was uploaded and checked." in alice_web.get(good.headers["location"]).text


def test_uploads_need_the_csrf_token_and_an_archive_name(alice, alice_web) -> None:
    assert upload(alice_web, "shapes.zip", dataset_zip(), token=None).status_code == 403
    wrong = upload(alice_web, "shapes.txt", b"hello", token=page_token(alice_web))
    assert wrong.status_code == 422 and "not a dataset archive" in wrong.json()["message"]
    assert ok(alice.get("/v1/datasets"))["results"] == []


def test_uploads_need_a_session(app) -> None:
    answer = upload(TestClient(app), "shapes.zip", dataset_zip(), token="x")
    assert answer.status_code == 401


def test_a_project_is_created_and_gets_a_cover(alice, alice_web, anon) -> None:
    token = page_token(alice_web)
    created = alice_web.post(
        "/projects", data={"name": "Boats", "csrf_token": token}, follow_redirects=False
    )
    assert created.status_code == 303
    project_id = re.match(
        r"/projects/([A-Za-z0-9]{20})\?notice=created", created.headers["location"]
    )
    assert project_id
    cover = alice_web.post(
        f"/projects/{project_id.group(1)}/cover",
        files={"file": ("cover.png", PNG_1PX, "image/png")},
        data={"csrf_token": token},
        follow_redirects=False,
    )
    assert cover.status_code == 303
    record = ok(alice.get(f"/v1/projects/{project_id.group(1)}"))
    assert record["meta"]["name"] == "Boats" and record["cover"]
    assert anon.get(record["cover"].removeprefix("http://testserver")).content == PNG_1PX
    page = alice_web.get("/projects").text
    assert "Boats" in page and "0 models" in page
    not_image = alice_web.post(
        f"/projects/{project_id.group(1)}/cover",
        files={"file": ("cover.png", b"not an image", "image/png")},
        data={"csrf_token": token},
    )
    assert not_image.status_code == 422


def test_another_users_project_is_404(bob, alice_web) -> None:
    private = ok(bob.post("/v1/projects", json={"meta": {"name": "secret"}}))["id"]
    assert alice_web.get(f"/projects/{private}").status_code == 404
    assert "secret" not in alice_web.get("/projects").text
    answer = alice_web.post(
        f"/projects/{private}/cover",
        files={"file": ("c.png", PNG_1PX, "image/png")},
        data={"csrf_token": page_token(alice_web)},
    )
    assert answer.status_code == 404
