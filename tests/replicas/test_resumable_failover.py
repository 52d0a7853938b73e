"""A resumable upload survives the replica that received it being killed mid-body (SIGKILL).

Two `trainhub server` processes share one PostgreSQL database, one storage (a SeaweedFS bucket,
or one blob folder on this machine) and one secret key, with no sticky routing: the test sends
each request to the replica it chooses. A 12 MiB upload starts on A: a first PATCH of 3 MiB
completes there (on S3 it waits in a tail object, below the 5 MiB part size), then a second
PATCH is cut off half-way and A is killed. B answers HEAD with the offset it can prove (on S3 the
tail and the first part A sent, 5 MiB; on the folder, the 3 MiB that A recorded), takes the rest,
and publishes; the weights download from B byte for byte. Nothing is published before the last
byte, and `trainhub gc --dry-run` then finds nothing to remove.
"""

import hashlib
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.factories import create_model
from tests.replicas.failover_support import (
    patch_cut_off,
    tus_create,
    tus_offset,
    tus_patch,
    wait_for,
)
from tests.replicas.stack import spawn_together
from tests.s3 import Bucket
from tests.seaweed import environment_for
from tests.servers import TRAINHUB, cli_create_user
from trainhub.server.storage import Storage, from_url

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


def recorded_offset(database_url: str) -> int:
    """Return the offset the database records for the one resumable upload (-1: none)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            found = conn.execute(text('SELECT "offset" FROM resumable_uploads')).scalar()
    finally:
        engine.dispose()
    return -1 if found is None else int(found)


def published(storage: Storage) -> list[str]:
    return [blob.key for blob in storage.iter_blobs()]


@pytest.mark.parametrize("storage_kind", ["seaweedfs", "local"])
def test_an_upload_cut_off_by_a_killed_replica_finishes_on_the_other(
    tmp_path: Path, postgres_database: str, storage_kind: str, request: pytest.FixtureRequest
) -> None:
    env = {
        "TRAINHUB_DATABASE_URL": postgres_database,
        "TRAINHUB_SECRET_KEY": "failover-test-" + "s" * 32,  # links signed by one verify on both
        "TRAINHUB_CREATE_ADMIN": "false",
    }
    if storage_kind == "seaweedfs":
        bucket: Bucket = request.getfixturevalue("s3_bucket")
        env.update(environment_for(bucket.endpoint_url))
        env["TRAINHUB_STORAGE_URL"] = f"s3://{bucket.name}/hub"
    else:
        env["TRAINHUB_STORAGE_URL"] = f"file://{tmp_path / 'shared-blobs'}"
    a, b = spawn_together(tmp_path, env)
    storage = from_url(env["TRAINHUB_STORAGE_URL"], tmp_path / "test-spool", sweep=False)
    try:
        key = cli_create_user(tmp_path / "cli", "alice", env=env)
        data = os.urandom(12 * MIB + 12_345)
        with (
            httpx.Client(base_url=a.url, headers={"x-api-key": key}, timeout=60) as on_a,
            httpx.Client(base_url=b.url, headers={"x-api-key": key}, timeout=60) as on_b,
        ):
            model_id = create_model(on_a)  # type: ignore[arg-type]
            location = tus_create(on_a, model_id, data)
            first = tus_patch(on_a, location, 0, data[: 3 * MIB])
            assert first.status_code == 204, first.text
            assert tus_offset(on_b, location) == 3 * MIB  # B sees what A acknowledged

            with patch_cut_off(a, key, location, 3 * MIB, data[3 * MIB :], sent_bytes=5 * MIB):
                if storage_kind == "seaweedfs":  # A's tail and new bytes made a part, recorded
                    wait_for(lambda: recorded_offset(postgres_database) == 5 * MIB, "a part")
                else:  # the bytes reached A's file, unrecorded until the PATCH ends
                    partial = tmp_path / "shared-blobs" / "partial" / location.rsplit("/")[-1]
                    wait_for(lambda: partial.stat().st_size >= 7 * MIB, "bytes in the file")
                a.kill()
            assert published(storage) == []  # nothing half-published

            offset = tus_offset(on_b, location)
            assert offset == (5 * MIB if storage_kind == "seaweedfs" else 3 * MIB)
            assert tus_patch(on_b, location, 0, data).status_code == 409  # a stale offset
            rest = tus_patch(on_b, location, offset, data[offset:])
            assert rest.status_code == 204, rest.text
            assert rest.headers["upload-offset"] == str(len(data))

            sha256 = hashlib.sha256(data).hexdigest()
            assert published(storage) == [f"models/{model_id}/best-{sha256}"]
            record = on_b.get(f"/v1/models/{model_id}").json()["data"]
            download = on_b.get(record["weights"])
            assert download.status_code == 200
            assert hashlib.sha256(download.content).hexdigest() == sha256
            assert on_b.head(location, headers={"Tus-Resumable": "1.0.0"}).status_code == 404
        assert storage.partials() == [] and storage.leftovers() == []
        if storage_kind == "seaweedfs":
            assert bucket.unfinished_multipart_uploads() == []
            assert bucket.object_keys() == [f"hub/models/{model_id}/best-{sha256}"]

        gc = subprocess.run(
            [*TRAINHUB, "gc", "--data-dir", str(b.data_dir), "--grace-s", "0", "--dry-run"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert gc.returncode == 0, gc.stderr
        assert gc.stdout == "" and gc.stderr.strip().splitlines()[-1] == "would remove nothing"
    finally:
        a.kill()
        b.kill()
