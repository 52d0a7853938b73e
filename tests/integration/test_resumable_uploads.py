"""Resumable weights uploads (tus 1.0: core, creation, checksum, termination)."""

import base64
import fcntl
import hashlib
import os
from pathlib import Path

from tests.factories import create_model, error, ok
from trainhub.server.api import uploads
from trainhub.server.bodies import BATCH_BYTES

TUS = {"Tus-Resumable": "1.0.0"}


def metadata(**fields: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in fields.items())


def create(client, model_id: str, data: bytes, **extra: str):
    fields = {
        "modelId": model_id,
        "type": "final",
        "epoch": "4",
        "map": "0.5",
        "sha256": hashlib.sha256(data).hexdigest(),
        **extra,
    }
    return client.post(
        "/v1/uploads",
        headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata(**fields)},
    )


def patch(client, location: str, offset: int, chunk: bytes, **headers: str):
    return client.patch(
        location,
        content=chunk,
        headers={
            **TUS,
            "Upload-Offset": str(offset),
            "Content-Type": "application/offset+octet-stream",
            **headers,
        },
    )


def path_of(response) -> str:
    assert response.status_code == 201, response.text
    return response.headers["location"].removeprefix("http://testserver")


def test_options_advertise_the_tus_extensions(anon) -> None:
    answer = anon.options("/v1/uploads")
    assert answer.status_code == 204
    assert answer.headers["tus-version"] == "1.0.0"
    assert set(answer.headers["tus-extension"].split(",")) == {
        "creation",
        "checksum",
        "termination",
    }
    assert "sha1" in answer.headers["tus-checksum-algorithm"]


def test_an_upload_in_three_parts_publishes_the_final_weights(alice, settings) -> None:
    model_id = create_model(alice)
    data = os.urandom(300_000)
    location = path_of(create(alice, model_id, data))
    for offset in (0, 100_000, 200_000):
        assert alice.head(location, headers=TUS).headers["upload-offset"] == str(offset)
        answer = patch(alice, location, offset, data[offset : offset + 100_000])
        assert answer.status_code == 204, answer.text
        assert answer.headers["upload-offset"] == str(offset + 100_000)
    record = ok(alice.get(f"/v1/models/{model_id}"))
    assert record["status"] == "trained" and record["has_best_weights"] is True
    download = alice.get(record["weights"].removeprefix("http://testserver"))
    assert hashlib.sha256(download.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert alice.head(location, headers=TUS).status_code == 404
    assert list((settings.data_dir / "blobs" / "partial").iterdir()) == []


def test_a_wrong_offset_is_a_conflict_that_names_the_right_one(alice) -> None:
    location = path_of(create(alice, create_model(alice), b"x" * 10))
    assert "does not match the server's 0" in error(patch(alice, location, 5, b"xxxxx"), 409)


def test_a_part_with_a_wrong_checksum_is_dropped_and_can_be_sent_again(alice) -> None:
    data = b"abcdefghij"
    location = path_of(create(alice, create_model(alice), data))
    bad = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    answer = patch(alice, location, 0, data[:5], **{"Upload-Checksum": f"sha1 {bad}"})
    assert answer.status_code == 460 and answer.json()["success"] is False
    assert alice.head(location, headers=TUS).headers["upload-offset"] == "0"
    good = base64.b64encode(hashlib.sha1(data[:5]).digest()).decode()
    assert (
        patch(alice, location, 0, data[:5], **{"Upload-Checksum": f"sha1 {good}"}).status_code
        == 204
    )
    assert alice.head(location, headers=TUS).headers["upload-offset"] == "5"


def test_a_whole_file_hash_mismatch_refuses_the_weights_and_keeps_nothing(alice, settings) -> None:
    model_id = create_model(alice)
    location = path_of(create(alice, model_id, b"0123456789", sha256="0" * 64))
    assert "sha256 does not match" in error(patch(alice, location, 0, b"0123456789"), 400)
    assert ok(alice.get(f"/v1/models/{model_id}"))["has_best_weights"] is False
    blobs = settings.data_dir / "blobs"
    assert not (blobs / "models").exists() or not any((blobs / "models").rglob("*"))
    assert list((blobs / "partial").iterdir()) == []


def test_terminated_uploads_are_gone(alice, settings) -> None:
    location = path_of(create(alice, create_model(alice), b"x" * 10))
    assert alice.delete(location, headers=TUS).status_code == 204
    assert alice.head(location, headers=TUS).status_code == 404
    assert list((settings.data_dir / "blobs" / "partial").iterdir()) == []


def test_an_upload_whose_file_is_missing_is_a_conflict_naming_the_shared_folder(
    alice, settings
) -> None:
    """As a replica answers whose storage folder is not the one the upload's file is in."""
    location = path_of(create(alice, create_model(alice), b"x" * 10))
    (settings.data_dir / "blobs" / "partial" / location.rsplit("/", 1)[1]).unlink()
    assert alice.head(location, headers=TUS).headers["upload-offset"] == "0"
    assert "share one storage folder" in error(patch(alice, location, 0, b"x" * 10), 409)


def test_a_patch_while_another_appends_is_a_conflict_and_takes_nothing(alice, settings) -> None:
    """The file is locked by the request appending (here: by this test, as another replica)."""
    data = b"0123456789"
    location = path_of(create(alice, create_model(alice), data))
    path = settings.data_dir / "blobs" / "partial" / location.rsplit("/", 1)[1]
    with path.open("r+b") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert "another request is appending" in error(patch(alice, location, 0, data), 409)
    assert alice.head(location, headers=TUS).headers["upload-offset"] == "0"
    assert patch(alice, location, 0, data).status_code == 204


def test_bad_creations_are_refused_with_reasons(alice, bob) -> None:
    model_id = create_model(alice)
    assert "Tus-Resumable" in error(alice.post("/v1/uploads", headers={"Upload-Length": "5"}), 412)
    assert "Upload-Length" in error(alice.post("/v1/uploads", headers={**TUS}), 400)
    too_big = alice.post(
        "/v1/uploads",
        headers={
            **TUS,
            "Upload-Length": str(10**13),
            "Upload-Metadata": metadata(modelId=model_id),
        },
    )
    error(too_big, 413)
    error(create(alice, model_id, b"x", type="sideways"), 422)
    error(create(bob, model_id, b"x"), 404)
    error(
        alice.post(
            "/v1/uploads", headers={**TUS, "Upload-Length": "5", "Upload-Metadata": "modelId !!!"}
        ),
        400,
    )


def test_someone_elses_upload_cannot_be_seen_or_touched(alice, bob) -> None:
    location = path_of(create(alice, create_model(alice), b"x" * 10))
    assert bob.head(location, headers=TUS).status_code == 404
    error(patch(bob, location, 0, b"x"), 404)
    error(bob.delete(location, headers=TUS), 404)


def test_a_patch_must_be_an_octet_stream(alice) -> None:
    location = path_of(create(alice, create_model(alice), b"x" * 10))
    answer = alice.patch(
        location, content=b"x", headers={**TUS, "Upload-Offset": "0", "Content-Type": "text/plain"}
    )
    error(answer, 415)


def test_bytes_beyond_the_declared_length_are_refused(alice, tmp_path: Path) -> None:
    location = path_of(create(alice, create_model(alice), b"x" * 10))
    error(patch(alice, location, 0, b"x" * 11), 413)


def test_a_part_larger_than_a_write_batch_is_stored_byte_for_byte(alice) -> None:
    model_id = create_model(alice)
    data = os.urandom(BATCH_BYTES * 2 + 12_345)  # several batches and a short tail
    location = path_of(create(alice, model_id, data))
    answer = patch(alice, location, 0, data)
    assert answer.status_code == 204, answer.text
    record = ok(alice.get(f"/v1/models/{model_id}"))
    download = alice.get(record["weights"].removeprefix("http://testserver"))
    assert hashlib.sha256(download.content).digest() == hashlib.sha256(data).digest()


def test_locks_are_dropped_once_nobody_holds_them(alice, bob) -> None:
    location = path_of(create(alice, create_model(alice), b"x" * 10))
    error(patch(bob, location, 0, b"x"), 404)  # not bob's
    error(patch(alice, location, 3, b"x"), 409)  # wrong offset
    for n in range(20):  # ids nobody created must not leave entries behind
        error(patch(alice, f"/v1/uploads/{'z' * 19}{n % 10}", 0, b"x"), 404)
    assert patch(alice, location, 0, b"x" * 10).status_code == 204
    assert uploads._locks == {}
