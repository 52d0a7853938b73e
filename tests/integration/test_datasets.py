"""Datasets: CRUD, lists, and the archive upload.

See docs/protocol/hub-v1.md §5.16-§5.17, §9, §16.1-§16.2.

Uploads are sent in hub-sdk's shape: ONE file part whose field name and file name are both the
archive's base name, with no per-part Content-Type. A refused upload must leave nothing behind in
the storage folder, not even a temp file.
"""

import io
import stat
import tarfile
import zipfile
from typing import Any

import pytest

from tests.blobs import stored_files
from tests.factories import DATASET_YAML, dataset_zip, error, local_path, ok, published_name
from tests.multipart import Part, file_part, multipart_body
from tests.testclient import TestClient
from trainhub.server.settings import Settings


def create_dataset(client: TestClient, name: str = "shapes", **doc: Any) -> str:
    """Create a dataset the way hub-sdk documents it and return its id."""
    body = {"meta": {"name": name}, "filename": f"{name}.zip", **doc}
    return str(ok(client.post("/v1/datasets", json=body))["id"])


def upload(client: TestClient, dataset_id: str, parts: list[Part]) -> Any:
    """POST a multipart body to the dataset's upload route."""
    body, headers = multipart_body(parts)
    return client.post(f"/v1/datasets/{dataset_id}/upload", content=body, headers=headers)


def upload_archive(client: TestClient, dataset_id: str, data: bytes, filename: str) -> Any:
    """Upload `data` as hub-sdk does and return the dataset record."""
    return ok(upload(client, dataset_id, [file_part(filename, data)]))


def dataset_tar(name: str = "shapes", *, gzipped: bool = False) -> bytes:
    """Return the same small detect dataset as `dataset_zip`, as a tar or tar.gz archive."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(dataset_zip(name))) as source,
        tarfile.open(fileobj=buffer, mode="w:gz" if gzipped else "w") as archive,
    ):
        for info in source.infolist():
            data = source.read(info)
            member = tarfile.TarInfo(info.filename)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def zip_with(extra: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    """Return the valid dataset zip with `extra` members appended."""
    buffer = io.BytesIO(dataset_zip())
    with zipfile.ZipFile(buffer, "a") as archive:
        for name, data in extra:
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def tar_with_symlink() -> bytes:
    buffer = io.BytesIO(dataset_tar())
    with tarfile.open(fileobj=buffer, mode="a") as archive:
        link = tarfile.TarInfo("shapes/images/train/b.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    return buffer.getvalue()


def test_a_dataset_is_created_with_its_filename_and_read_back(alice) -> None:
    dataset_id = create_dataset(alice)
    record = ok(alice.get(f"/v1/datasets/{dataset_id}"))
    assert record["id"] == dataset_id
    assert record["meta"]["name"] == "shapes"
    assert record["filename"] == "shapes.zip"
    assert record["public"] is False
    assert record["status"] == "new"
    assert record["url"] is None


@pytest.mark.parametrize("filename", ["../shapes.zip", "sub/shapes.zip", "shapes.exe", ""])
def test_a_dataset_filename_that_is_not_a_bare_archive_name_is_refused(alice, filename) -> None:
    response = alice.post("/v1/datasets", json={"meta": {"name": "x"}, "filename": filename})
    assert "filename" in error(response, 422)


def test_datasets_are_listed_newest_first_in_pages_with_a_total_and_a_cursor(alice, bob) -> None:
    ids = [create_dataset(alice, f"set{i}") for i in range(5)]
    pages, cursor = [], None
    for _ in range(3):
        params: dict[str, Any] = {"limit": 2, **({"last_doc_id": cursor} if cursor else {})}
        page = ok(alice.get("/v1/datasets", params=params))
        assert page["total"] == 5
        pages.append([r["id"] for r in page["results"]])
        assert all("meta" in r for r in page["results"])
        cursor = page["lastRecordId"]
    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert cursor is None
    assert ok(bob.get("/v1/datasets")) == {"results": [], "total": 0, "lastRecordId": None}


def test_public_datasets_are_readable_by_everyone_and_private_ones_only_by_their_owner(
    alice, bob, anon
) -> None:
    private_id = create_dataset(alice, "private")
    public_id = create_dataset(alice, "public", public=True)
    listed = ok(anon.get("/v1/datasets", params={"public": "True", "limit": 10}))
    assert [r["id"] for r in listed["results"]] == [public_id]
    assert ok(bob.get(f"/v1/datasets/{public_id}"))["public"] is True
    ok(anon.get(f"/v1/datasets/{public_id}"))
    error(bob.get(f"/v1/datasets/{private_id}"), 404)
    error(anon.get(f"/v1/datasets/{private_id}"), 404)
    error(anon.get("/v1/datasets"), 401)


def test_patch_merges_into_meta_and_can_make_a_dataset_public(alice, bob) -> None:
    dataset_id = create_dataset(alice)
    record = ok(alice.patch(f"/v1/datasets/{dataset_id}", json={"meta": {"note": "v2"}}))
    assert record["meta"] == {"name": "shapes", "note": "v2"}
    record = ok(alice.patch(f"/v1/datasets/{dataset_id}", json={"meta": {"name": "renamed"}}))
    assert record["meta"] == {"name": "renamed", "note": "v2"}
    error(bob.get(f"/v1/datasets/{dataset_id}"), 404)
    ok(alice.patch(f"/v1/datasets/{dataset_id}", json={"public": True}))
    assert ok(bob.get(f"/v1/datasets/{dataset_id}"))["meta"]["name"] == "renamed"
    error(bob.patch(f"/v1/datasets/{dataset_id}", json={"meta": {"name": "mine"}}), 403)
    assert ok(alice.get(f"/v1/datasets/{dataset_id}"))["meta"]["name"] == "renamed"


def test_patch_cannot_write_the_fields_the_server_derives(alice) -> None:
    dataset_id = create_dataset(alice)
    for field in ("url", "sha256", "status", "id"):
        error(alice.patch(f"/v1/datasets/{dataset_id}", json={field: "x"}), 422)


def test_an_archive_uploaded_the_hub_sdk_way_is_published_and_downloads_unchanged(
    alice, anon, settings: Settings
) -> None:
    dataset_id = create_dataset(alice)
    data = dataset_zip("shapes")
    record = upload_archive(alice, dataset_id, data, "shapes.zip")
    assert f"{dataset_id}/shapes.zip" in record["url"]
    assert record["url"].endswith(".zip")
    assert record["status"] == "ready"
    assert record["size_bytes"] == len(data)
    assert record["layout"] == "detect"
    assert published_name(ok(alice.get(f"/v1/datasets/{dataset_id}"))["url"]) == published_name(
        record["url"]
    )
    download = anon.get(local_path(record["url"]))
    assert download.status_code == 200
    assert download.content == data
    assert download.headers["content-length"] == str(len(data))
    assert stored_files(settings) == {f"datasets/{dataset_id}/{record['sha256']}"}


def test_a_new_archive_changes_the_urls_last_segment_and_deletes_the_old_blob(
    alice, anon, settings: Settings
) -> None:
    dataset_id = create_dataset(alice)
    first = upload_archive(alice, dataset_id, dataset_zip(), "shapes.zip")
    data = dataset_zip()  # random image bytes: different content
    second = upload_archive(alice, dataset_id, data, "shapes.zip")
    assert first["sha256"] != second["sha256"]
    assert published_name(first["url"]) != published_name(second["url"])
    assert second["url"].endswith(".zip")
    assert stored_files(settings) == {f"datasets/{dataset_id}/{second['sha256']}"}
    error(anon.get(local_path(first["url"])), 404)
    assert anon.get(local_path(second["url"])).content == data


@pytest.mark.parametrize(
    ("filename", "data"),
    [("shapes.tar", dataset_tar()), ("shapes.tar.gz", dataset_tar(gzipped=True))],
)
def test_tar_and_tar_gz_archives_are_accepted(alice, anon, filename, data) -> None:
    dataset_id = create_dataset(alice)
    record = upload_archive(alice, dataset_id, data, filename)
    assert f"{dataset_id}/{filename}" in record["url"]
    assert record["url"].endswith(filename.removeprefix("shapes"))
    assert anon.get(local_path(record["url"])).content == data


def test_a_file_name_in_utf8_as_requests_sends_it_is_accepted(alice, anon) -> None:
    dataset_id = create_dataset(alice)
    data = dataset_zip("shapes")
    record = upload_archive(alice, dataset_id, data, "数据集.zip")
    assert record["filename"] == "数据集.zip"
    assert anon.get(local_path(record["url"])).content == data


def test_soft_delete_hides_the_dataset_and_its_download(alice, anon) -> None:
    dataset_id = create_dataset(alice)
    record = upload_archive(alice, dataset_id, dataset_zip(), "shapes.zip")
    assert ok(alice.delete(f"/v1/datasets/{dataset_id}", params={"hard": "False"}))["hard"] is False
    error(alice.get(f"/v1/datasets/{dataset_id}"), 404)
    assert dataset_id not in alice.get("/v1/datasets").text
    error(anon.get(local_path(record["url"])), 404)


def test_hard_delete_removes_the_dataset_and_its_blob(alice, settings: Settings) -> None:
    dataset_id = create_dataset(alice)
    upload_archive(alice, dataset_id, dataset_zip(), "shapes.zip")
    assert stored_files(settings)
    assert ok(alice.delete(f"/v1/datasets/{dataset_id}", params={"hard": "True"}))["hard"] is True
    error(alice.get(f"/v1/datasets/{dataset_id}"), 404)
    assert stored_files(settings) == set()


def test_a_model_that_used_a_hard_deleted_dataset_loses_the_reference(alice) -> None:
    dataset_id = create_dataset(alice)
    model_id = ok(alice.post("/v1/models", json={"meta": {"name": "m"}, "datasetId": dataset_id}))[
        "id"
    ]
    assert ok(alice.get(f"/v1/models/{model_id}"))["datasetId"] == dataset_id
    ok(alice.delete(f"/v1/datasets/{dataset_id}", params={"hard": "True"}))
    assert ok(alice.get(f"/v1/models/{model_id}"))["datasetId"] is None


VALID = dataset_zip()
REFUSED_UPLOADS = {
    "YAML with a relative path:": [
        file_part("shapes.zip", dataset_zip(yaml_text="path: ../datasets/shapes\n" + DATASET_YAML))
    ],
    "YAML with an absolute path:": [
        file_part("shapes.zip", dataset_zip(yaml_text="path: /data/shapes\n" + DATASET_YAML))
    ],
    "zip-slip member ../evil": [file_part("shapes.zip", zip_with([("../evil", b"owned")]))],
    "zip-slip member shapes/../../evil": [
        file_part("shapes.zip", zip_with([("shapes/../../evil", b"owned")]))
    ],
    "absolute member /tmp/evil": [file_part("shapes.zip", zip_with([("/tmp/evil", b"owned")]))],
    "zip symlink member": [
        file_part("shapes.zip", zip_with([zip_symlink("shapes/images/train/b.png", "/etc/passwd")]))
    ],
    "tar symlink member": [file_part("shapes.tar", tar_with_symlink())],
    "not an archive, named x.zip": [file_part("x.zip", b"this is not a zip archive at all\n")],
    "a zip named .tar": [file_part("shapes.tar", VALID)],
    "file name with a slash": [file_part("sub/shapes.zip", VALID)],
    "file name with a backslash": [file_part("..\\shapes.zip", VALID)],
    "file name that is not an archive name": [file_part("shapes.bin", VALID)],
    "two file parts": [file_part("shapes.zip", VALID), file_part("other.zip", VALID)],
    "no file part": [Part("shapes.zip", b"just a text field")],
    "wrong field name": [file_part("shapes.zip", VALID, field="archive")],
    "an empty file": [file_part("shapes.zip", b"")],
}


@pytest.mark.parametrize("parts", REFUSED_UPLOADS.values(), ids=REFUSED_UPLOADS.keys())
def test_a_refused_upload_answers_json_and_leaves_no_blob_behind(
    alice, settings: Settings, parts: list[Part]
) -> None:
    dataset_id = create_dataset(alice)
    response = upload(alice, dataset_id, parts)
    assert response.status_code in (400, 422), response.text
    error(response, response.status_code)
    assert stored_files(settings) == set()
    record = ok(alice.get(f"/v1/datasets/{dataset_id}"))
    assert (record["url"], record["sha256"], record["status"]) == (None, None, "new")


def test_a_refused_upload_keeps_the_archive_published_before(
    alice, anon, settings: Settings
) -> None:
    dataset_id = create_dataset(alice)
    data = dataset_zip()
    before = upload_archive(alice, dataset_id, data, "shapes.zip")
    error(upload(alice, dataset_id, [file_part("shapes.zip", zip_with([("../evil", b"x")]))]), 422)
    after = ok(alice.get(f"/v1/datasets/{dataset_id}"))
    assert published_name(after["url"]) == published_name(before["url"])
    assert stored_files(settings) == {f"datasets/{dataset_id}/{before['sha256']}"}
    assert anon.get(local_path(before["url"])).content == data


def test_a_yaml_path_refusal_says_to_remove_the_path_line(alice) -> None:
    dataset_id = create_dataset(alice)
    archive = dataset_zip(yaml_text="path: ../datasets/shapes\n" + DATASET_YAML)
    message = error(upload(alice, dataset_id, [file_part("shapes.zip", archive)]), 422)
    assert "path:" in message
    assert "remove" in message
