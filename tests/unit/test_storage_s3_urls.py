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


def test_s3_storages_share_botocore_data_but_read_credentials_afresh(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every S3Storage of a process reads botocore's data files through one loader, and each
    still takes the credentials and region the environment holds when it is made (AWS_REGION
    ahead of AWS_DEFAULT_REGION)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "first-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "first-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-1")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # named first, as by the AWS CLI
    first = S3Storage("bucket-one", "hub", tmp_path / "one", endpoint_url="http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "second-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "second-secret")
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-2")
    second = S3Storage("bucket-two", "hub", tmp_path / "two", endpoint_url="http://127.0.0.1:9")
    keys = [s._client._request_signer._credentials.access_key for s in (first, second)]
    assert keys == ["first-key", "second-key"]
    assert [s._client.meta.region_name for s in (first, second)] == ["eu-west-1", "us-east-2"]
    models = [s._client.meta.service_model._service_description for s in (first, second)]
    assert models[0] is models[1]  # parsed once, by the shared loader


@pytest.mark.parametrize(
    ("variables", "profile_region", "region"),
    [
        ({"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-1"}, None, "eu-west-1"),
        ({"AWS_REGION": "", "AWS_DEFAULT_REGION": "us-west-1"}, None, "us-west-1"),
        ({"AWS_REGION": "eu-west-1"}, "ap-south-1", "eu-west-1"),
        ({}, "ap-south-1", "ap-south-1"),
        ({}, None, "us-east-1"),
    ],
)
def test_the_region_comes_from_aws_region_then_the_default_then_the_profile(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    variables: dict[str, str],
    profile_region: str | None,
    region: str,
) -> None:
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nregion = {profile_region}\n" if profile_region else "")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    storage = S3Storage("bucket", "hub", tmp_path / "spool", endpoint_url="http://127.0.0.1:9")
    assert storage._client.meta.region_name == region


def test_many_s3_storages_leave_the_shared_loader_as_it_was(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each boto3 session adds its data folder to its loader's paths; the shared loader keeps
    one of each, however many storages the process makes."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    storages = [
        S3Storage("bucket", "hub", tmp_path / f"spool-{i}", endpoint_url="http://127.0.0.1:9")
        for i in range(5)
    ]
    paths = storages[-1]._client._loader.search_paths
    assert paths == list(dict.fromkeys(paths)) and len(paths) <= 3
