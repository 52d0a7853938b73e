"""Weights over HTTP: epoch and final uploads, signed downloads, and every refused upload.

docs/protocol/hub-v1.md §5.10, §10 and §16.1/§16.5; docs/security.md §2.1, §2.6 and §2.10. A
refused upload never leaves a file behind in the storage folder (published blobs or temp files).
"""

import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import make_settings
from tests.factories import (
    create_model,
    create_users,
    error,
    multipart_body,
    ok,
    revoke_key,
    stored_blobs,
    upload_weights,
    weights_file,
)
from tests.testclient import TestClient
from trainhub.server.app import create_app
from trainhub.server.signing import create_token, download_path
from trainhub.server.state import hub_state

UNKNOWN_ID = "A" * 20
BOUNDARY = "trainhub-test-boundary"
MULTIPART = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
SMALL_LIMIT_BYTES = 64 * 1024


def read(client, model_id: str) -> dict:
    return ok(client.get(f"/v1/models/{model_id}"))


def upload_bytes(client, model_id: str, data: bytes, *, final: bool = False, **fields: str):
    """Upload `data` as last.pt (or best.pt with `final`) with hub-sdk's fields."""
    part = "best.pt" if final else "last.pt"
    form = {"epoch": "0", "type": "final" if final else "epoch", **fields}
    return client.post(f"/v1/models/{model_id}/upload", data=form, files={part: (part, data)})


def upload_raw(client, model_id: str, body: bytes, headers: dict | None = None):
    headers = MULTIPART if headers is None else headers
    return client.post(f"/v1/models/{model_id}/upload", content=body, headers=headers)


def path_of(url: str) -> str:
    return urlsplit(url).path


def url_parts(url: str) -> dict[str, str]:
    """Split /files/<token>/<id>/<label>/<name> into its parts."""
    match = re.fullmatch(r"/files/([^/]+)/([^/]+)/([^/]+)/([^/]+)", path_of(url))
    assert match, url
    return dict(zip(("token", "id", "label", "name"), match.groups(), strict=True))


def downloaded(client, url: str) -> bytes:
    """GET a download URL and return its bytes (200 required)."""
    response = client.get(url)
    assert response.status_code == 200, response.text
    return response.content


def another_id_like(model_id: str) -> str:
    """Return a well-formed id that differs from `model_id` in its first letter."""
    return ("B" if model_id[0] != "B" else "C") + model_id[1:]


def assert_no_blobs(settings) -> None:
    assert stored_blobs(settings.data_dir) == []


# ---------------------------------------------------------------- epoch and final uploads


def test_epoch_upload_makes_the_model_resumable(alice, tmp_path: Path) -> None:
    model_id = create_model(alice)
    path, sha256 = weights_file(tmp_path / "last.pt")
    response = upload_weights(alice, model_id, path, epoch=3, isBest="True")
    assert response.status_code == 200
    assert ok(response) == {"kind": "last", "epoch": 3, "sha256": sha256, "size_bytes": 4096}

    record = read(alice, model_id)
    assert record["status"] == "training"
    assert record["has_last_weights"] is True and record["has_best_weights"] is False
    assert f"{model_id}/last.pt" in record["resume"]
    assert record["resume"].endswith(".pt") and record["resume"].startswith("http://testserver/")
    assert record["weights"] is None
    assert record["epoch"] == 3


def test_final_upload_makes_the_model_trained(alice, tmp_path: Path) -> None:
    model_id = create_model(alice)
    last, _ = weights_file(tmp_path / "last.pt")
    best, sha256 = weights_file(tmp_path / "best.pt", size=2048)
    ok(upload_weights(alice, model_id, last, epoch=4))
    response = upload_weights(alice, model_id, best, final=True, epoch=4, map="0.48213")
    assert response.status_code == 200
    assert ok(response) == {"kind": "best", "epoch": 4, "sha256": sha256, "size_bytes": 2048}

    record = read(alice, model_id)
    assert record["status"] == "trained"
    assert record["has_best_weights"] is True and record["has_last_weights"] is True
    assert f"{model_id}/best.pt" in record["weights"] and record["weights"].endswith(".pt")
    assert f"{model_id}/last.pt" in record["resume"]
    assert record["map"] == pytest.approx(0.48213)


def test_status_goes_new_then_training_then_trained(alice, tmp_path: Path) -> None:
    model_id = create_model(alice)
    assert read(alice, model_id)["status"] == "new"
    ok(upload_bytes(alice, model_id, os.urandom(100)))
    assert read(alice, model_id)["status"] == "training"
    ok(upload_bytes(alice, model_id, os.urandom(100), epoch="1"))
    assert read(alice, model_id)["status"] == "training"
    ok(upload_bytes(alice, model_id, os.urandom(100), final=True, epoch="1", map="0.0"))
    assert read(alice, model_id)["status"] == "trained"
    ok(upload_bytes(alice, model_id, os.urandom(100), epoch="2"))
    assert read(alice, model_id)["status"] == "trained"


def test_final_upload_without_map_or_with_a_non_finite_map_stores_no_map(alice) -> None:
    model_id = create_model(alice)
    ok(upload_bytes(alice, model_id, b"best", final=True))
    assert read(alice, model_id)["map"] is None
    ok(upload_bytes(alice, model_id, b"best2", final=True, map="nan"))
    assert read(alice, model_id)["map"] is None
    ok(upload_bytes(alice, model_id, b"best3", final=True, map="0.25"))
    assert read(alice, model_id)["map"] == 0.25


def test_download_urls_change_name_when_the_content_changes(alice, tmp_path: Path) -> None:
    model_id = create_model(alice)
    first, _ = weights_file(tmp_path / "a.pt")
    second, _ = weights_file(tmp_path / "b.pt")
    ok(upload_weights(alice, model_id, first, epoch=1))
    name_1 = url_parts(read(alice, model_id)["resume"])["name"]
    ok(upload_weights(alice, model_id, second, epoch=1))
    name_2 = url_parts(read(alice, model_id)["resume"])["name"]
    assert name_1 != name_2
    assert name_1.endswith("-last.pt") and name_2.endswith("-last.pt")

    ok(upload_weights(alice, model_id, first, final=True, epoch=1))
    best_1 = url_parts(read(alice, model_id)["weights"])["name"]
    ok(upload_weights(alice, model_id, second, final=True, epoch=1))
    best_2 = url_parts(read(alice, model_id)["weights"])["name"]
    assert best_1 != best_2 and best_1.endswith("-best.pt") and best_2.endswith("-best.pt")
    for name in (name_1, name_2, best_1, best_2):
        assert model_id in name


def test_the_same_content_uploaded_again_keeps_one_blob(alice, settings, tmp_path: Path) -> None:
    model_id = create_model(alice)
    path, sha256 = weights_file(tmp_path / "last.pt")
    ok(upload_weights(alice, model_id, path))
    ok(upload_weights(alice, model_id, path))
    assert [p.name for p in stored_blobs(settings.data_dir)] == [f"last-{sha256}"]
    assert downloaded(alice, read(alice, model_id)["resume"]) == path.read_bytes()


def test_checkpoint_and_final_weights_are_stored_apart(alice, settings, tmp_path) -> None:
    model_id = create_model(alice)
    path, sha256 = weights_file(tmp_path / "w.pt")
    ok(upload_weights(alice, model_id, path))
    ok(upload_weights(alice, model_id, path, final=True))
    names = sorted(p.name for p in stored_blobs(settings.data_dir))
    assert names == [f"best-{sha256}", f"last-{sha256}"]


# ---------------------------------------------------------------- downloads


@pytest.fixture
def trained(alice, tmp_path: Path) -> dict:
    """A trained model: its id, checkpoint and final weights on disk, and its record."""
    model_id = create_model(alice)
    last, last_sha = weights_file(tmp_path / "last.pt", size=5000)
    best, best_sha = weights_file(tmp_path / "best.pt", size=4096)
    ok(upload_weights(alice, model_id, last, epoch=2))
    ok(upload_weights(alice, model_id, best, final=True, epoch=2))
    return {
        "id": model_id,
        "last": last.read_bytes(),
        "best": best.read_bytes(),
        "last_sha": last_sha,
        "best_sha": best_sha,
        "record": read(alice, model_id),
    }


def test_download_without_a_key_gives_identical_bytes(anon, trained) -> None:
    for url_field, data, sha in (("weights", "best", "best_sha"), ("resume", "last", "last_sha")):
        response = anon.get(trained["record"][url_field])
        assert response.status_code == 200
        assert response.content == trained[data]
        assert response.headers["content-length"] == str(len(trained[data]))
        assert response.headers["etag"] == f'"{trained[sha]}"'
        assert response.headers["accept-ranges"] == "bytes"
        assert hashlib.sha256(response.content).hexdigest() == trained[sha]
        name = url_parts(trained["record"][url_field])["name"]
        assert name in response.headers["content-disposition"]


def test_head_answers_the_headers_without_a_body(anon, trained) -> None:
    response = anon.head(trained["record"]["weights"])
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "4096"
    assert response.headers["etag"] == f'"{trained["best_sha"]}"'


SATISFIABLE_RANGES = [
    ("bytes=0-99", 0, 99),
    ("bytes=100-", 100, 4095),
    ("bytes=-10", 4086, 4095),
    ("bytes=4095-4095", 4095, 4095),
    ("bytes=4000-999999", 4000, 4095),
    ("bytes=-99999", 0, 4095),
]


def test_a_single_range_answers_206_with_content_range(anon, trained, subtests) -> None:
    for range_header, start, end in SATISFIABLE_RANGES:
        with subtests.test(range=range_header):
            response = anon.get(trained["record"]["weights"], headers={"range": range_header})
            assert response.status_code == 206
            assert response.content == trained["best"][start : end + 1]
            assert response.headers["content-range"] == f"bytes {start}-{end}/4096"
            assert response.headers["content-length"] == str(end - start + 1)


def test_head_with_a_range_answers_206_without_a_body(anon, trained) -> None:
    response = anon.head(trained["record"]["weights"], headers={"range": "bytes=10-19"})
    assert response.status_code == 206
    assert response.content == b""
    assert response.headers["content-range"] == "bytes 10-19/4096"
    assert response.headers["content-length"] == "10"


UNSATISFIABLE_RANGES = ["bytes=4096-", "bytes=5000-6000", "bytes=10-5", "bytes=-0"]


def test_an_unsatisfiable_range_answers_416(anon, trained, subtests) -> None:
    for range_header in UNSATISFIABLE_RANGES:
        with subtests.test(range=range_header):
            response = anon.get(trained["record"]["weights"], headers={"range": range_header})
            assert "range" in error(response, 416)
            assert response.headers["content-range"] == "bytes */4096"


NOT_SINGLE_RANGES = ["bytes=0-1,5-6", "items=0-5", "bytes=abc", "bytes=-"]


def test_a_range_header_that_is_not_a_single_byte_range_gets_the_whole_file(
    anon, trained, subtests
) -> None:
    for range_header in NOT_SINGLE_RANGES:
        with subtests.test(range=range_header):
            response = anon.get(trained["record"]["weights"], headers={"range": range_header})
            assert response.status_code == 200 and response.content == trained["best"]


def test_if_none_match_with_the_current_etag_answers_304(anon, trained) -> None:
    url = trained["record"]["weights"]
    etag = anon.get(url).headers["etag"]
    for header in (etag, f'"other", {etag}'):
        response = anon.get(url, headers={"if-none-match": header})
        assert response.status_code == 304 and response.content == b""
        assert response.headers["etag"] == etag
    stale = anon.get(url, headers={"if-none-match": '"0123"'})
    assert stale.status_code == 200 and stale.content == trained["best"]


def test_tampered_download_urls_answer_404(anon, trained) -> None:
    url = trained["record"]["weights"]
    parts = url_parts(url)
    token, model_id, label, name = parts["token"], parts["id"], parts["label"], parts["name"]
    expires, _, signature = token.partition(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    other = another_id_like(model_id)
    tampered = [
        f"/files/{expires}.{flipped}/{model_id}/{label}/{name}",
        f"/files/{int(expires) + 1000}.{signature}/{model_id}/{label}/{name}",
        f"/files/{signature}/{model_id}/{label}/{name}",
        f"/files/garbage/{model_id}/{label}/{name}",
        f"/files/{token}/{model_id}/{label}/{name.replace('-best', '-bestx')}",
        f"/files/{token}/{model_id}/{label}/{model_id}-00000000-best.pt",
        f"/files/{token}/{other}/{label}/{name}",
        f"/files/{token}/short/{label}/{name}",
        f"/files/{token}/{model_id}/last.pt/{name}",
        f"/files/{token}/{model_id}/cover/{name}",
        f"/files/{token}/{model_id}/shapes.zip/{name}",
    ]
    for path in tampered:
        assert "invalid or expired" in error(anon.get(path), 404), path
    assert anon.get(url).status_code == 200


def test_an_expired_token_answers_404(app, users, anon, trained) -> None:
    parts = url_parts(trained["record"]["weights"])
    secret, owner = hub_state(app).links.secret, users.alice.id
    fresh = create_token(secret, trained["id"], "best.pt", trained["best_sha"], 60, owner)
    expired = create_token(secret, trained["id"], "best.pt", trained["best_sha"], -1, owner)
    fresh_path = download_path(fresh, trained["id"], "best.pt", parts["name"])
    expired_path = download_path(expired, trained["id"], "best.pt", parts["name"])
    assert anon.get(fresh_path).content == trained["best"]
    assert "expired" in error(anon.get(expired_path), 404)


def test_links_of_a_server_with_a_negative_ttl_are_already_expired(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url, download_ttl_s=-1)
    application = create_app(settings)
    try:
        people = create_users(hub_state(application).db)
        with TestClient(application, headers={"x-api-key": people.alice.key}) as client:
            model_id = create_model(client)
            ok(upload_bytes(client, model_id, b"weights", final=True))
            error(client.get(read(client, model_id)["weights"]), 404)
    finally:
        hub_state(application).db.dispose()


def test_an_old_url_answers_404_after_a_new_upload_and_its_blob_is_deleted(
    alice, anon, settings, trained, tmp_path: Path
) -> None:
    old_weights, old_resume = trained["record"]["weights"], trained["record"]["resume"]
    new_best, new_best_sha = weights_file(tmp_path / "best2.pt")
    new_last, new_last_sha = weights_file(tmp_path / "last2.pt")
    ok(upload_weights(alice, trained["id"], new_best, final=True, epoch=3))
    ok(upload_weights(alice, trained["id"], new_last, epoch=3))
    error(anon.get(old_weights), 404)
    error(anon.get(old_resume), 404)
    record = read(alice, trained["id"])
    assert anon.get(record["weights"]).content == new_best.read_bytes()
    assert anon.get(record["resume"]).content == new_last.read_bytes()
    names = sorted(p.name for p in stored_blobs(settings.data_dir))
    assert names == sorted([f"best-{new_best_sha}", f"last-{new_last_sha}"])


def test_downloads_of_a_deleted_model_answer_404(alice, anon, trained) -> None:
    ok(alice.delete(f"/v1/models/{trained['id']}"))
    error(anon.get(trained["record"]["weights"]), 404)
    error(anon.get(trained["record"]["resume"]), 404)
    assert anon.head(trained["record"]["resume"]).status_code == 404  # HEAD: no body


def test_downloads_of_a_private_model_need_no_key(alice, anon, bob, trained) -> None:
    error(anon.get(f"/v1/models/{trained['id']}"), 404)
    assert anon.get(trained["record"]["weights"]).content == trained["best"]
    assert bob.get(trained["record"]["resume"]).content == trained["last"]


# ---------------------------------------------------------------- sha256 field


def test_a_matching_sha256_field_is_accepted(alice, tmp_path: Path) -> None:
    model_id = create_model(alice)
    path, sha256 = weights_file(tmp_path / "last.pt")
    assert ok(upload_weights(alice, model_id, path, sha256=sha256.upper()))["sha256"] == sha256


def test_a_sha256_mismatch_answers_400_and_leaves_no_blob(alice, settings, tmp_path) -> None:
    model_id = create_model(alice)
    path, _ = weights_file(tmp_path / "last.pt")
    message = error(upload_weights(alice, model_id, path, sha256="0" * 64), 400)
    assert "sha256" in message
    assert_no_blobs(settings)
    assert read(alice, model_id)["has_last_weights"] is False
    assert read(alice, model_id)["status"] == "new"


def test_a_sha256_mismatch_keeps_the_previous_weights(alice, anon, settings, tmp_path) -> None:
    model_id = create_model(alice)
    first, sha256 = weights_file(tmp_path / "first.pt")
    second, _ = weights_file(tmp_path / "second.pt")
    ok(upload_weights(alice, model_id, first, final=True))
    error(upload_weights(alice, model_id, second, final=True, sha256=sha256), 400)
    assert [p.name for p in stored_blobs(settings.data_dir)] == [f"best-{sha256}"]
    assert anon.get(read(alice, model_id)["weights"]).content == first.read_bytes()


# ---------------------------------------------------------------- refused uploads


def test_an_empty_file_answers_422_and_leaves_no_blob(alice, settings) -> None:
    model_id = create_model(alice)
    assert "empty" in error(upload_bytes(alice, model_id, b""), 422)
    assert_no_blobs(settings)


def test_two_files_answer_422_and_leave_no_blob(alice, settings) -> None:
    model_id = create_model(alice)
    for files in (
        {"last.pt": b"one", "best.pt": b"two"},
        {"best.pt": b"one", "last.pt": b"two"},
    ):
        body = multipart_body(BOUNDARY, {"epoch": "0", "type": "epoch"}, files)
        assert "exactly one" in error(upload_raw(alice, model_id, body), 422)
    twice = multipart_body(BOUNDARY, {"epoch": "0", "type": "epoch"}, {"last.pt": b"one"})
    twice = twice.replace(b"--" + BOUNDARY.encode() + b"--\r\n", b"") + multipart_body(
        BOUNDARY, {}, {"last.pt": b"two"}
    )
    error(upload_raw(alice, model_id, twice), 422)
    assert_no_blobs(settings)
    assert read(alice, model_id)["has_last_weights"] is False


def test_no_file_at_all_answers_422(alice, settings) -> None:
    model_id = create_model(alice)
    body = multipart_body(BOUNDARY, {"epoch": "0", "type": "epoch"})
    assert "exactly one" in error(upload_raw(alice, model_id, body), 422)
    assert_no_blobs(settings)


WRONG_PART_NAMES = ["weights.pt", "file", "../last.pt", "last.pt.exe", "epoch"]


def test_a_file_part_with_another_name_answers_400_and_leaves_no_blob(
    alice, settings, subtests
) -> None:
    model_id = create_model(alice)
    for part in WRONG_PART_NAMES:
        with subtests.test(part=part):
            fields = {"epoch": "0", "type": "epoch"}
            body = multipart_body(BOUNDARY, fields, {part: os.urandom(2048)})
            assert "unexpected file part" in error(upload_raw(alice, model_id, body), 400)
            assert_no_blobs(settings)


def test_a_wrong_part_after_a_good_one_removes_the_good_ones_temp_file(alice, settings) -> None:
    model_id = create_model(alice)
    body = multipart_body(
        BOUNDARY, {"epoch": "0", "type": "epoch"}, {"last.pt": os.urandom(4096), "x.pt": b"1"}
    )
    error(upload_raw(alice, model_id, body), 400)
    assert_no_blobs(settings)


INVALID_FIELDS = [
    {"epoch": "0"},
    {"epoch": "0", "type": ""},
    {"epoch": "0", "type": "best"},
    {"epoch": "0", "type": "EPOCH"},
    {"type": "epoch"},
    {"type": "epoch", "epoch": ""},
    {"type": "epoch", "epoch": "-1"},
    {"type": "epoch", "epoch": "1.5"},
    {"type": "epoch", "epoch": "three"},
    {"type": "epoch", "epoch": "²"},
    {"type": "epoch", "epoch": "\u0663"},
    {"type": "epoch", "epoch": "99999999999"},
    {"type": "epoch", "epoch": "1" * 5000},
    {"type": "final", "epoch": "0", "map": "high"},
]


def test_missing_or_invalid_fields_answer_422_and_leave_no_blob(alice, settings, subtests) -> None:
    model_id = create_model(alice)
    for fields in INVALID_FIELDS:
        with subtests.test(fields={k: v[:20] for k, v in fields.items()}):
            part = "best.pt" if fields.get("type") == "final" else "last.pt"
            body = multipart_body(BOUNDARY, fields, {part: os.urandom(1024)})
            error(upload_raw(alice, model_id, body), 422)
            assert_no_blobs(settings)
    record = read(alice, model_id)
    assert record["status"] == "new" and record["has_last_weights"] is False


def test_malformed_parts_answer_400_and_leave_no_blob(alice, settings, subtests) -> None:
    model_id = create_model(alice)
    weights = {"last.pt": os.urandom(2048)}
    good = {"epoch": "0", "type": "epoch"}
    b = f"--{BOUNDARY}\r\n".encode()
    bodies = {
        "a field over 64 KiB": multipart_body(BOUNDARY, {**good, "map": "1" * 70_000}, weights),
        "33 fields": multipart_body(BOUNDARY, {**good, **{f"f{i}": "x" for i in range(31)}}),
        "no Content-Disposition": b
        + b"X-Other: 1\r\n\r\nvalue\r\n"
        + multipart_body(BOUNDARY, good, weights),
        "no name": b
        + b"Content-Disposition: form-data\r\n\r\nvalue\r\n"
        + multipart_body(BOUNDARY, good, weights),
        "not form-data": b
        + b'Content-Disposition: attachment; name="epoch"\r\n\r\n0\r\n'
        + multipart_body(BOUNDARY, good, weights),
    }
    for case, body in bodies.items():
        with subtests.test(case=case):
            error(upload_raw(alice, model_id, body), 400)
            assert_no_blobs(settings)
    assert read(alice, model_id)["has_last_weights"] is False


def test_fields_may_follow_the_file_part(alice) -> None:
    model_id = create_model(alice)
    body = multipart_body(BOUNDARY, {}, {"last.pt": b"weights"})
    body = body.replace(b"--" + BOUNDARY.encode() + b"--\r\n", b"") + multipart_body(
        BOUNDARY, {"epoch": "5", "type": "epoch"}
    )
    assert ok(upload_raw(alice, model_id, body))["epoch"] == 5


def test_the_largest_epoch_number_is_accepted(alice) -> None:
    model_id = create_model(alice)
    assert ok(upload_bytes(alice, model_id, b"w", epoch="1000000"))["epoch"] == 1_000_000


CUTS = [10, 120, 300, -40, -3]


def test_a_truncated_multipart_body_answers_400_and_leaves_no_blob(
    alice, settings, subtests
) -> None:
    model_id = create_model(alice)
    body = multipart_body(BOUNDARY, {"epoch": "0", "type": "epoch"}, {"last.pt": os.urandom(2048)})
    for cut in CUTS:
        with subtests.test(cut=cut):
            assert "multipart" in error(upload_raw(alice, model_id, body[:cut]), 400)
            assert_no_blobs(settings)
    assert read(alice, model_id)["has_last_weights"] is False


def test_a_body_that_is_not_multipart_at_all_answers_400(alice, settings) -> None:
    model_id = create_model(alice)
    error(upload_raw(alice, model_id, b"just some bytes" * 100), 400)
    error(upload_raw(alice, model_id, b""), 400)
    assert_no_blobs(settings)


NOT_MULTIPART = [
    {"content-type": "application/json"},
    {"content-type": "application/octet-stream"},
    {"content-type": "application/x-www-form-urlencoded"},
    {"content-type": "multipart/form-data"},
    {"content-type": "multipart/mixed; boundary=" + BOUNDARY},
    {},
]


def test_a_non_multipart_upload_answers_415(alice, settings, subtests) -> None:
    model_id = create_model(alice)
    body = multipart_body(BOUNDARY, {"epoch": "0", "type": "epoch"}, {"last.pt": b"weights"})
    for headers in NOT_MULTIPART:
        with subtests.test(headers=headers):
            assert "multipart" in error(upload_raw(alice, model_id, body, headers), 415)
            assert_no_blobs(settings)


def test_a_json_upload_answers_415(alice) -> None:
    model_id = create_model(alice)
    error(alice.post(f"/v1/models/{model_id}/upload", json={"epoch": 0, "type": "epoch"}), 415)


# ---------------------------------------------------------------- size limit


@pytest.fixture
def small(tmp_path: Path, database_url: str) -> Iterator[tuple[TestClient, object]]:
    """A client of an app whose uploads may be at most SMALL_LIMIT_BYTES, and its settings."""
    settings = make_settings(tmp_path, database_url, max_upload_bytes=SMALL_LIMIT_BYTES)
    application = create_app(settings)
    people = create_users(hub_state(application).db)
    with TestClient(application, headers={"x-api-key": people.alice.key}) as client:
        yield client, settings
    hub_state(application).db.dispose()


def test_a_body_over_the_limit_with_content_length_answers_413_and_leaves_no_blob(small) -> None:
    client, settings = small
    model_id = create_model(client)
    response = upload_bytes(client, model_id, os.urandom(SMALL_LIMIT_BYTES + 1))
    assert response.request.headers.get("content-length")
    assert "limit" in error(response, 413)
    assert_no_blobs(settings)
    assert read(client, model_id)["has_last_weights"] is False


def test_a_chunked_body_over_the_limit_answers_413_and_leaves_no_blob(small) -> None:
    client, settings = small
    model_id = create_model(client)
    body = multipart_body(
        BOUNDARY, {"epoch": "0", "type": "epoch"}, {"last.pt": os.urandom(3 * SMALL_LIMIT_BYTES)}
    )

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    response = client.post(f"/v1/models/{model_id}/upload", content=chunks(), headers=MULTIPART)
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "limit" in error(response, 413)
    assert_no_blobs(settings)


def test_a_body_just_under_the_limit_is_accepted(small) -> None:
    client, settings = small
    model_id = create_model(client)
    data = os.urandom(SMALL_LIMIT_BYTES - 1024)
    ok(upload_bytes(client, model_id, data))
    assert client.get(read(client, model_id)["resume"]).content == data
    assert len(stored_blobs(settings.data_dir)) == 1


# ---------------------------------------------------------------- who may do what


def test_unknown_and_malformed_model_ids_answer_404(alice, settings) -> None:
    for bad_id in (UNKNOWN_ID, "short", "B" * 21, "abc-def_ghi.jkl-mnop"):
        error(upload_bytes(alice, bad_id, b"weights"), 404)
    assert_no_blobs(settings)


def test_bob_gets_404_uploading_to_alices_private_model(alice, bob, settings) -> None:
    model_id = create_model(alice)
    error(upload_bytes(bob, model_id, b"weights"), 404)
    assert_no_blobs(settings)


def test_bob_gets_403_uploading_to_alices_public_model(alice, bob, settings) -> None:
    model_id = create_model(alice, public=True)
    assert "read-only" in error(upload_bytes(bob, model_id, b"weights", final=True), 403)
    assert_no_blobs(settings)
    assert read(bob, model_id)["status"] == "new"


def test_anonymous_upload_answers_401(alice, anon, settings) -> None:
    model_id = create_model(alice, public=True)
    error(upload_bytes(anon, model_id, b"weights"), 401)
    assert_no_blobs(settings)


def test_a_revoked_key_answers_401_for_uploads(app, bob, users, settings) -> None:
    model_id = create_model(bob)
    revoke_key(app, users.bob)
    error(upload_bytes(bob, model_id, b"weights"), 401)
    assert_no_blobs(settings)


def test_anonymous_reader_of_a_public_model_can_download_its_weights(alice, anon) -> None:
    model_id = create_model(alice, public=True)
    ok(upload_bytes(alice, model_id, b"public weights", final=True))
    record = read(anon, model_id)
    assert anon.get(record["weights"]).content == b"public weights"
