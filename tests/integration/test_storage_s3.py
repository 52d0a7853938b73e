"""S3 storage against a real S3 server (SeaweedFS): spooled, checksummed, atomic, clear errors.

Each test gets a bucket of its own; AWS_* variables point boto3 at the server exactly as an
operator would point it at SeaweedFS or R2 (tests/seaweed.py). A fault proxy between boto3 and
SeaweedFS answers chosen requests with 503 or damages their bytes.
"""

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3 import SECRET_ACCESS_KEY, Bucket
from tests.seaweed import S3FaultProxy, start_fault_proxy
from tests.servers import free_port
from trainhub.server.storage import BlobNotFoundError, StorageError, from_url
from trainhub.server.storage.s3 import S3Storage

MIB = 1024 * 1024


def open_storage(bucket: Bucket, spool: Path, prefix: str = "hub/a", **options: int) -> S3Storage:
    return S3Storage(bucket.name, prefix, spool, **options)


def spooled(spool: Path) -> list[str]:
    """Return every file in the spool folder, relative to it."""
    return sorted(str(p.relative_to(spool)) for p in spool.rglob("*") if p.is_file())


def test_a_published_blob_is_complete_hashed_and_readable_in_ranges(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    storage = open_storage(s3_bucket, tmp_path / "spool")
    writer = storage.create_writer()
    chunks = [b"a" * 1000, b"b" * 5000, b"c"]
    for chunk in chunks:
        writer.write(chunk)
    assert spooled(tmp_path / "spool") == [f"tmp/{writer.temp_path.name}"]
    writer.publish("models/x/best-1")
    data = b"".join(chunks)
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest() and writer.size == len(data)
    assert s3_bucket.object_keys() == ["hub/a/models/x/best-1"]
    assert s3_bucket.read("hub/a/models/x/best-1") == data
    assert storage.size("models/x/best-1") == len(data)
    assert b"".join(storage.iter_range("models/x/best-1", 999, 1001)) == b"abb"
    assert b"".join(storage.iter_range("models/x/best-1", 0, len(data) - 1)) == data
    assert spooled(tmp_path / "spool") == []
    storage.delete("models/x/best-1")
    storage.delete("models/x/best-1")  # a missing object is not an error
    assert s3_bucket.object_keys() == []


def test_an_object_appears_only_when_published_and_an_abort_leaves_nothing(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    storage = open_storage(s3_bucket, tmp_path / "spool")
    kept, dropped = storage.create_writer(), storage.create_writer()
    for writer in (kept, dropped):
        writer.write(os.urandom(10_000))
    assert s3_bucket.object_keys() == []
    dropped.abort()
    assert s3_bucket.object_keys() == []
    kept.publish("models/x/last-1")
    kept.abort()  # the upload routes abort every part after publishing: a no-op then
    assert s3_bucket.object_keys() == ["hub/a/models/x/last-1"]
    assert spooled(tmp_path / "spool") == []


def test_a_large_blob_goes_in_parts_streamed_from_disk_and_arrives_intact(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    storage = open_storage(
        s3_bucket,
        tmp_path / "spool",
        multipart_threshold_bytes=5 * MIB,
        multipart_chunk_bytes=5 * MIB,
    )
    writer = storage.create_writer()
    expected = hashlib.sha256()
    for _ in range(20):
        chunk = os.urandom(MIB)
        writer.write(chunk)
        expected.update(chunk)
    writer.publish("datasets/x/big")
    assert writer.hexdigest() == expected.hexdigest()
    head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key="hub/a/datasets/x/big")
    assert head["ContentLength"] == 20 * MIB
    assert head["ETag"].strip('"').endswith("-4")  # four 5 MiB parts: a multipart upload
    received = hashlib.sha256()
    for chunk in storage.iter_range("datasets/x/big", 0, 20 * MIB - 1):
        assert len(chunk) <= MIB
        received.update(chunk)
    assert received.hexdigest() == expected.hexdigest()
    assert s3_bucket.unfinished_multipart_uploads() == []
    assert spooled(tmp_path / "spool") == []


def test_a_resumable_upload_is_a_multipart_upload_of_checksummed_parts_and_a_small_tail(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    storage = open_storage(s3_bucket, tmp_path / "spool")
    upload_id, data = "A" * 20, os.urandom(6 * MIB + 10)
    numbers = iter(range(1, 100))
    state = storage.start_partial(upload_id)
    appender = storage.append_partial(upload_id, state, 0, len(data), lambda: next(numbers))
    first = appender.write(data[: 6 * MIB])
    assert first is not None and first.offset == 5 * MIB  # a part went: recordable at once
    kept = appender.keep()
    appender.recorded()
    appender.close()
    assert kept.offset == 6 * MIB and kept.state["tail_size"] == MIB
    (tail,) = s3_bucket.object_keys()  # the bytes below a part wait in a small object
    assert (
        tail.startswith(f"hub/a/partial/{upload_id}.tail-")
        and s3_bucket.read(tail) == data[5 * MIB : 6 * MIB]
    )
    listed = s3_bucket.client.list_parts(
        Bucket=s3_bucket.name, Key=f"hub/a/partial/{upload_id}", UploadId=state["multipart"]
    )["Parts"]
    assert [(part["PartNumber"], part["Size"]) for part in listed] == [(1, 5 * MIB)]
    assert (
        kept.state["parts"][0][2]
        == base64.b64encode(hashlib.sha256(data[: 5 * MIB]).digest()).decode()
    )

    appender = storage.append_partial(upload_id, kept.state, kept.offset, len(data), lambda: 7)
    appender.write(data[6 * MIB :])
    done = appender.keep()  # the tail and the rest: the last part, of any size
    appender.recorded()
    appender.close()
    assert done.offset == len(data) and done.state["tail"] is None
    assert s3_bucket.object_keys() == []  # the superseded tail went; nothing is visible yet
    writer = storage.finish_partial(upload_id, done.state, len(data))
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    assert [blob.key for blob in storage.iter_blobs()] == []  # completed, but not published
    writer.publish("models/x/best-2")
    storage.discard_partial(upload_id)
    assert s3_bucket.object_keys() == ["hub/a/models/x/best-2"]
    assert s3_bucket.read("hub/a/models/x/best-2") == data
    assert s3_bucket.unfinished_multipart_uploads() == [] and spooled(tmp_path / "spool") == []


def test_an_upload_completed_by_a_request_that_died_is_published_by_the_next(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    """Its replica died between CompleteMultipartUpload and publishing: the row still holds the
    offset before the last PATCH, so the client sends the last bytes again, to any replica."""
    storage = open_storage(s3_bucket, tmp_path / "spool")
    upload_id, data = "C" * 20, os.urandom(7 * MIB)
    numbers = iter(range(1, 100))
    state = storage.start_partial(upload_id)
    first = storage.append_partial(upload_id, state, 0, len(data), lambda: next(numbers))
    first.write(data[: 6 * MIB])
    recorded = first.keep()  # what the row holds: one part and a tail
    first.close()
    last = storage.append_partial(
        upload_id, recorded.state, recorded.offset, len(data), lambda: next(numbers)
    )
    last.write(data[6 * MIB :])
    storage.finish_partial(upload_id, last.keep().state, len(data)).abort()  # then it died
    last.close()
    assert s3_bucket.unfinished_multipart_uploads() == []  # completed, not published

    again = storage.append_partial(
        upload_id, recorded.state, recorded.offset, len(data), lambda: next(numbers)
    )
    assert again.write(data[6 * MIB :]) is None
    done = again.keep()
    again.close()
    assert done.offset == len(data) and done.state["completed"] is True
    writer = storage.finish_partial(upload_id, done.state, len(data))
    assert writer.hexdigest() == hashlib.sha256(data).hexdigest()
    writer.abort()
    storage.discard_partial(upload_id)
    assert s3_bucket.object_keys() == []


def test_a_missing_object_is_a_blob_not_found_error(s3_bucket: Bucket, tmp_path: Path) -> None:
    storage = open_storage(s3_bucket, tmp_path / "spool")
    with pytest.raises(BlobNotFoundError, match="hub/a/models/x/none"):
        storage.size("models/x/none")
    with pytest.raises(BlobNotFoundError, match="NoSuchKey"):
        storage.iter_range("models/x/none", 0, 10)


def test_malformed_keys_are_refused_before_any_request(s3_bucket: Bucket, tmp_path: Path) -> None:
    storage = open_storage(s3_bucket, tmp_path / "spool")
    writer = storage.create_writer()
    writer.write(b"x")
    for key in ("../x", "models/../../x", "/etc/passwd", "models//x"):
        with pytest.raises(ValueError, match="malformed storage key"):
            storage.size(key)
        with pytest.raises(ValueError, match="malformed storage key"):
            storage.delete(key)
    with pytest.raises(ValueError, match="malformed storage key"):
        writer.publish("models/../x")
    assert s3_bucket.object_keys() == [] and spooled(tmp_path / "spool") == []


def test_check_passes_and_leaves_no_probe_behind(s3_bucket: Bucket, tmp_path: Path) -> None:
    storage = open_storage(s3_bucket, tmp_path / "spool")
    storage.check()
    storage.check()
    assert s3_bucket.object_keys() == [] and spooled(tmp_path / "spool") == []


def test_check_names_a_missing_bucket(s3_bucket: Bucket, tmp_path: Path) -> None:
    storage = S3Storage("trainhub-no-such-bucket", "hub", tmp_path / "spool")
    with pytest.raises(StorageError, match=r"'trainhub-no-such-bucket'.*NoSuchBucket"):
        storage.check()


def test_an_unreachable_endpoint_is_a_clear_storage_error(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    storage = from_url(f"s3://{s3_bucket.name}/hub?endpoint_url={down}", tmp_path / "spool")
    with pytest.raises(StorageError, match=f"at {down} is not reachable.*Could not connect"):
        storage.check()
    writer = storage.create_writer()
    writer.write(b"weights")
    with pytest.raises(StorageError, match=r"cannot upload to s3://.*/hub/models/x/last-1"):
        writer.publish("models/x/last-1")
    assert spooled(tmp_path / "spool") == []
    with pytest.raises(StorageError, match="Could not connect") as caught:
        storage.size("models/x/last-1")
    assert not isinstance(caught.value, BlobNotFoundError)


def test_missing_credentials_are_named_in_the_error(
    s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no wait for an EC2 role
    storage = open_storage(s3_bucket, tmp_path / "spool")
    with pytest.raises(StorageError, match="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"):
        storage.check()


def test_stale_spool_files_are_swept_at_start(s3_bucket: Bucket, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (spool / "tmp").mkdir(parents=True)
    (spool / "partial").mkdir()
    (spool / "tmp" / ".upload-killed").write_bytes(b"x")
    # resumable uploads spooled by a version before they went to the bucket: nothing reads them
    (spool / "partial" / ("N" * 20)).write_bytes(b"old")
    open_storage(s3_bucket, spool)
    assert spooled(spool) == [] and not (spool / "partial").exists()


def test_describe_names_bucket_prefix_and_endpoint_but_no_secret(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    storage = from_url(f"s3://{s3_bucket.name}/hub/a/", tmp_path / "spool")
    assert isinstance(storage, S3Storage)
    assert storage.describe() == f"s3://{s3_bucket.name}/hub/a (endpoint {s3_bucket.endpoint_url})"
    assert SECRET_ACCESS_KEY not in storage.describe()
    elsewhere = from_url(f"s3://{s3_bucket.name}?endpoint_url=http://minio:9000", tmp_path / "s")
    assert elsewhere.describe() == f"s3://{s3_bucket.name}/ (endpoint http://minio:9000)"


# --- the bucket failing mid-upload (a fault proxy between boto3 and SeaweedFS) ----------------


@pytest.fixture
def proxy(s3_endpoint: str) -> Iterator[S3FaultProxy]:
    with start_fault_proxy(s3_endpoint) as running:
        yield running


def behind(proxy: S3FaultProxy, bucket: Bucket, spool: Path) -> S3Storage:
    return S3Storage(
        bucket.name,
        "hub",
        spool,
        endpoint_url=proxy.url,
        multipart_threshold_bytes=5 * MIB,
        multipart_chunk_bytes=5 * MIB,
    )


def test_a_part_answered_503_is_sent_again_and_the_blob_arrives_whole(
    proxy: S3FaultProxy, s3_bucket: Bucket, tmp_path: Path
) -> None:
    storage = behind(proxy, s3_bucket, tmp_path / "spool")
    fault = proxy.fail(lambda r: r.is_upload_part() and r.query["partNumber"] == ["2"], times=1)
    data = os.urandom(12 * MIB)
    writer = storage.create_writer()
    writer.write(data)
    writer.publish("datasets/x/big")
    assert fault.hits == 1
    assert sum(r.is_upload_part() and r.query["partNumber"] == ["2"] for r in proxy.seen) == 2
    parts = [r for r in proxy.seen if r.is_upload_part()]
    assert len(parts) == 4 and all(r.sha256_header == r.body_sha256 for r in parts)
    assert s3_bucket.read("hub/datasets/x/big") == data
    assert s3_bucket.unfinished_multipart_uploads() == []


def test_a_bucket_that_keeps_answering_503_fails_cleanly_with_nothing_published(
    proxy: S3FaultProxy, s3_bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    storage = behind(proxy, s3_bucket, tmp_path / "spool")
    proxy.fail(lambda r: r.is_upload_part() and r.query["partNumber"] == ["3"])
    writer = storage.create_writer()
    writer.write(os.urandom(11 * MIB))
    with pytest.raises(
        StorageError, match=r"cannot upload to s3://.*/hub/datasets/x/big: ServiceUnavailable"
    ):
        writer.publish("datasets/x/big")
    assert s3_bucket.object_keys() == []
    assert s3_bucket.unfinished_multipart_uploads() == []  # aborted
    assert spooled(tmp_path / "spool") == []
    proxy.fail(lambda r: r.is_put_object())
    small = storage.create_writer()
    small.write(b"weights")
    with pytest.raises(StorageError, match="ServiceUnavailable"):
        small.publish("models/x/last-1")
    assert s3_bucket.object_keys() == [] and spooled(tmp_path / "spool") == []


@pytest.mark.parametrize("size", [1000, 11 * MIB], ids=["put", "parts"])
def test_bytes_damaged_on_the_way_to_the_bucket_are_refused_by_their_checksum(
    proxy: S3FaultProxy, s3_bucket: Bucket, tmp_path: Path, size: int
) -> None:
    storage = behind(proxy, s3_bucket, tmp_path / "spool")
    proxy.corrupt(lambda r: r.is_upload_part() or r.is_put_object())
    writer = storage.create_writer()
    writer.write(os.urandom(size))
    with pytest.raises(StorageError, match=r"BadDigest|checksum"):
        writer.publish("models/x/best-1")
    assert s3_bucket.object_keys() == [] and s3_bucket.unfinished_multipart_uploads() == []


def test_the_completing_request_refuses_to_replace_an_object(
    proxy: S3FaultProxy, s3_bucket: Bucket, tmp_path: Path
) -> None:
    storage = behind(proxy, s3_bucket, tmp_path / "spool")
    for size in (1000, 11 * MIB):
        s3_bucket.client.put_object(Bucket=s3_bucket.name, Key="hub/models/x/best-1", Body=b"old")
        writer = storage.create_writer()
        writer.write(os.urandom(size))
        with pytest.raises(StorageError, match="already holds 3 bytes"):
            writer.publish("models/x/best-1")
        assert s3_bucket.read("hub/models/x/best-1") == b"old"
    completing = [r for r in proxy.seen if r.is_put_object() or r.is_complete_multipart()]
    assert len(completing) == 2
    assert s3_bucket.unfinished_multipart_uploads() == []
