"""What every storage backend does alike, on the local folder and on a SeaweedFS bucket.

Publication is atomic and never replaces a blob, reads come in ranges, a missing blob is a
BlobNotFoundError, and the listings the clean-up relies on (published blobs, leftovers of
interrupted uploads, what resumable uploads stored) show exactly what is there. A resumable
upload continues through a second handle on the same folder or bucket (another replica), and
two requests racing for one offset never mix their bytes.
"""

import hashlib
import os
from pathlib import Path

import pytest

from tests.s3 import Bucket
from trainhub.server.storage import BlobNotFoundError, Storage, StorageError, from_url
from trainhub.server.storage.base import PartialConflictError, Progress
from trainhub.server.storage.s3 import S3Storage

MIB = 1024 * 1024


@pytest.fixture
def second(storage: Storage, tmp_path: Path) -> Storage:
    """Another handle on the same folder or bucket, with a spool of its own: a second replica."""
    if isinstance(storage, S3Storage):
        return S3Storage(storage.bucket, storage.prefix, tmp_path / "spool-2")
    return from_url(f"file://{tmp_path / 'blobs'}", tmp_path / "spool-2", sweep=False)


class Counter:
    """The part numbers the database hands out (db/uploads.py reserve_part)."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        self.last += 1
        return self.last


@pytest.fixture
def storage(storage_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if storage_kind == "local":
        return from_url(f"file://{tmp_path / 'blobs'}", tmp_path / "spool")
    bucket: Bucket = request.getfixturevalue("s3_bucket")
    return S3Storage(
        bucket.name,
        "hub",
        tmp_path / "spool",
        multipart_threshold_bytes=5 * MIB,
        multipart_chunk_bytes=5 * MIB,
    )


def publish(storage: Storage, key: str, data: bytes) -> None:
    writer = storage.create_writer()
    writer.write(data)
    writer.publish(key)


def test_a_published_blob_is_complete_hashed_and_readable_in_ranges(storage: Storage) -> None:
    writer = storage.create_writer()
    chunks = [b"a" * 1000, b"b" * 5000, b"c"]
    for chunk in chunks:
        writer.write(chunk)
    assert [blob.key for blob in storage.iter_blobs()] == []
    writer.publish("models/x/best-1")
    data = b"".join(chunks)
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    assert storage.size("models/x/best-1") == len(data)
    assert b"".join(storage.iter_range("models/x/best-1", 999, 1001)) == b"abb"
    assert b"".join(storage.iter_range("models/x/best-1", 0, len(data) - 1)) == data
    assert storage.leftovers() == []


def test_an_aborted_blob_leaves_nothing(storage: Storage) -> None:
    writer = storage.create_writer()
    writer.write(b"partial")
    assert len(storage.leftovers()) == 1
    writer.abort()
    assert storage.leftovers() == [] and list(storage.iter_blobs()) == []


def test_a_blob_in_parts_arrives_intact(storage: Storage) -> None:
    data = os.urandom(11 * MIB + 123)  # three parts in a bucket
    publish(storage, "datasets/x/big", data)
    received = b"".join(storage.iter_range("datasets/x/big", 0, len(data) - 1))
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    assert storage.leftovers() == []


def test_publishing_the_same_blob_again_keeps_it_and_a_different_one_is_refused(
    storage: Storage,
) -> None:
    publish(storage, "models/x/last-1", b"weights")
    publish(storage, "models/x/last-1", b"weights")  # a retried upload of the same file
    with pytest.raises(StorageError, match="already holds 7 bytes, not the 8 uploaded"):
        publish(storage, "models/x/last-1", b"replaced")
    assert b"".join(storage.iter_range("models/x/last-1", 0, 6)) == b"weights"
    assert [blob.key for blob in storage.iter_blobs()] == ["models/x/last-1"]
    assert storage.leftovers() == []


def test_a_missing_blob_is_a_blob_not_found_error(storage: Storage) -> None:
    with pytest.raises(BlobNotFoundError):
        storage.size("models/x/none")
    with pytest.raises(BlobNotFoundError):
        storage.iter_range("models/x/none", 0, 10)
    storage.delete("models/x/none")  # a missing blob is not an error


def test_the_listings_show_blobs_leftovers_and_resumable_files_apart(storage: Storage) -> None:
    publish(storage, "models/a/best-1", b"one")
    publish(storage, "projects/b/cover-2", b"two!")
    in_flight = storage.create_writer()
    in_flight.write(b"not yet")
    storage.start_partial("U" * 20)
    blobs = {blob.key: blob.size_bytes for blob in storage.iter_blobs()}
    assert blobs == {"models/a/best-1": 3, "projects/b/cover-2": 4}
    (leftover,) = storage.leftovers()
    assert str(in_flight.temp_path) in leftover.what
    assert [item.upload_id for item in storage.partials()] == ["U" * 20]
    leftover.remove()
    assert storage.leftovers() == []
    in_flight.abort()  # closes the file the clean-up removed
    storage.delete("models/a/best-1")
    assert [blob.key for blob in storage.iter_blobs()] == ["projects/b/cover-2"]
    storage.discard_partial("U" * 20)
    storage.discard_partial("U" * 20)  # idempotent
    assert storage.partials() == []


def test_only_a_bucket_gives_presigned_download_urls(storage: Storage, storage_kind: str) -> None:
    publish(storage, "models/x/best-1", b"weights")
    url = storage.presign_download(
        "models/x/best-1", filename="best.pt", media_type="application/octet-stream", expires_s=60
    )
    if storage_kind == "local":
        assert url is None
        return
    import httpx

    assert url is not None and "X-Amz-Signature=" in url
    answer = httpx.get(url)
    assert answer.status_code == 200 and answer.content == b"weights"
    assert answer.headers["content-disposition"] == 'attachment; filename="best.pt"'
    assert httpx.get(url.replace("X-Amz-Signature=", "X-Amz-Signature=0")).status_code == 403


def append(
    storage: Storage, state: dict, offset: int, data: bytes, length: int, parts: Counter
) -> Progress:
    appender = storage.append_partial("R" * 20, state, offset, length, parts)
    try:
        for start in range(0, len(data), MIB):
            appender.write(data[start : start + MIB])
        progress = appender.keep()
        appender.recorded()
        return progress
    finally:
        appender.close()


def test_a_resumable_upload_continues_on_a_second_handle_and_finishes_hashed(
    storage: Storage, second: Storage
) -> None:
    data = os.urandom(13 * MIB + 123)
    parts = Counter()
    state = storage.start_partial("R" * 20)
    first = append(storage, state, 0, data[: 7 * MIB], len(data), parts)
    assert first.offset == 7 * MIB
    # the second replica continues from what the row would hold
    second_half = append(second, first.state, first.offset, data[7 * MIB :], len(data), parts)
    assert second_half.offset == len(data)
    assert [blob.key for blob in storage.iter_blobs()] == []  # nothing published yet
    writer = second.finish_partial("R" * 20, second_half.state, len(data))
    assert writer.size == len(data)
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    writer.publish("models/r/best-1")
    second.discard_partial("R" * 20)
    assert b"".join(storage.iter_range("models/r/best-1", 0, len(data) - 1)) == data
    assert storage.partials() == [] and storage.leftovers() == []


def test_two_requests_racing_for_one_offset_never_mix_their_bytes(
    storage: Storage, second: Storage
) -> None:
    length = 12 * MIB
    parts = Counter()
    state = storage.start_partial("R" * 20)
    ours = storage.append_partial("R" * 20, state, 0, length, parts)
    try:
        if not isinstance(storage, S3Storage):  # a local file is locked by the request
            with pytest.raises(PartialConflictError, match="another request is appending"):
                second.append_partial("R" * 20, state, 0, length, parts)
            return
        theirs = second.append_partial("R" * 20, state, 0, length, parts)
        ours_data, theirs_data = b"a" * length, b"b" * length
        ours.write(ours_data[: 6 * MIB])
        theirs.write(theirs_data[: 6 * MIB])  # the same byte range, a part number of its own
        ours.write(ours_data[6 * MIB :])
        won = ours.keep()  # the compare-and-set on the offset picks this one
        writer = storage.finish_partial("R" * 20, won.state, length)
        assert writer.hexdigest() == hashlib.sha256(ours_data).hexdigest()
        writer.abort()
    finally:
        ours.close()
        storage.discard_partial("R" * 20)
