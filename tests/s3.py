"""A real S3-compatible server for tests: moto's standalone server on a free 127.0.0.1 port.

No boto3 mocks: the storage talks HTTP to `moto_server` as it would to MinIO or AWS. One server
runs per test session (the `moto_endpoint` fixture in tests/conftest.py starts it the first time
a test asks for it); each test gets a bucket of its own (`s3_bucket`).
"""

import functools
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.servers import free_port

MOTO_SERVER = [sys.executable, "-m", "moto.server"]
ACCESS_KEY_ID = "trainhub-test"
SECRET_ACCESS_KEY = "trainhub-test-secret-" + "x" * 20


def aws_env(endpoint_url: str) -> dict[str, str]:
    """Return the AWS_* variables that point boto3 at `endpoint_url`, and at nothing else."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,  # a developer's ~/.aws must not leak in
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@contextmanager
def start_moto(log_path: Path) -> Iterator[str]:
    """Run moto's S3-compatible server for the duration of the block; yield its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                httpx.get(f"{url}/moto-api/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"moto_server did not answer within 30 s:\n{_tail(log_path)}"
                    ) from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


@functools.cache
def s3_client(endpoint_url: str) -> Any:
    """Return a boto3 S3 client for the test server, independent of the environment.

    One per server and process: making one parses botocore's S3 model, about 75 ms of CPU, and
    the tests make a bucket each. The first may be made before the tests' environment is set
    (SeaweedFS's readiness check), so it reads no AWS config file and names its own retries.
    """
    import boto3  # the dev extra has it; imported here so that conftest loads without it
    from botocore.config import Config
    from botocore.session import Session

    session = Session()
    for name in ("config_file", "credentials_file"):
        session.set_config_variable(name, os.devnull)
    return boto3.session.Session(botocore_session=session).client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


@dataclass
class Bucket:
    """A bucket on the test server and a client to look into it."""

    name: str
    endpoint_url: str
    client: Any

    def object_keys(self) -> list[str]:
        """Return the names of every object in the bucket, sorted."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        """Return the bytes of the object `key`."""
        return bytes(self.client.get_object(Bucket=self.name, Key=key)["Body"].read())

    def unfinished_multipart_uploads(self) -> list[str]:
        """Return the keys of multipart uploads started but neither completed nor aborted."""
        answer = self.client.list_multipart_uploads(Bucket=self.name)
        return [upload["Key"] for upload in answer.get("Uploads", [])]


def create_bucket(endpoint_url: str, name: str | None = None) -> Bucket:
    """Create a bucket (a fresh `trainhub-test-<hex>` unless named) and return it."""
    client = s3_client(endpoint_url)
    name = name or f"trainhub-test-{secrets.token_hex(4)}"
    with suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=name)
    return Bucket(name, endpoint_url, client)
