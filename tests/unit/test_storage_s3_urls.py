"""S3 storage URLs: what `s3://BUCKET/PREFIX[?endpoint_url=URL]` means, and what is refused.

Nothing here talks to a bucket (tests/integration/test_storage_s3.py does).
"""

import sys
from pathlib import Path

import pytest

from trainhub.server.storage import from_url
from trainhub.server.storage.s3 import S3Storage, parse_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("s3://trainhub-data/hub/prod", ("trainhub-data", "hub/prod", None)),
        ("s3://trainhub-data/hub/prod/", ("trainhub-data", "hub/prod", None)),
        ("s3://trainhub-data", ("trainhub-data", "", None)),
        ("s3://trainhub-data/", ("trainhub-data", "", None)),
        ("s3://my.bucket/a_b-c.d", ("my.bucket", "a_b-c.d", None)),
        (
            "s3://blobs/hub?endpoint_url=https://minio.internal:9000",
            ("blobs", "hub", "https://minio.internal:9000"),
        ),
    ],
)
def test_a_storage_url_names_bucket_prefix_and_endpoint(url: str, expected: tuple) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3:///hub", "does not name a bucket"),
        ("s3://ab/hub", "does not name a bucket"),
        ("s3://bucket:9000/hub", "does not name a bucket"),
        ("s3://bucket/hub/../x", "may hold only"),
        ("s3://bucket/hub//x", "may hold only"),
        ("s3://bucket/hub%2Fx", "may hold only"),
        ("s3://bucket/hub?region=eu-west-1", "not understood"),
        ("s3://bucket/hub?endpoint_url=ftp://x", "must start with http"),
    ],
)
def test_malformed_storage_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_credentials_in_the_url_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValueError, match="AWS_ACCESS_KEY_ID") as caught:
        parse_url("s3://AKIAEXAMPLE:hunter2secret@bucket/hub")
    assert "hunter2secret" not in str(caught.value)


def test_opening_a_bucket_needs_no_network(tmp_path: Path) -> None:
    storage = from_url("s3://trainhub-data/hub?endpoint_url=http://minio:9000", tmp_path / "spool")
    assert isinstance(storage, S3Storage)
    assert storage.object_key("models/x/best-1") == "hub/models/x/best-1"
    assert storage.describe() == "s3://trainhub-data/hub (endpoint http://minio:9000)"
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["tmp"]


def test_without_boto3_the_error_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now raises ImportError
    with pytest.raises(ValueError, match=r"pip install \"trainhub\[server,s3\]\""):
        from_url("s3://trainhub-data/hub", tmp_path / "spool")
