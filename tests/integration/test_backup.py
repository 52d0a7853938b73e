"""`trainhub backup` and `trainhub restore`: a whole hub out and back, on both databases.

A hub with users, a model with its checkpoint and final weights, a dataset archive and a project
cover is backed up through the CLI, restored into an empty database and storage, and served
again: the same keys sign in, every file downloads byte for byte, and a download link made
before the backup still works (the signing secret travels with the backup). SQLite uses the
SQLite backup API, PostgreSQL pg_dump; the portable format (what a machine without pg_dump
uses) works on both and moves a hub from SQLite to PostgreSQL.
"""

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from tests.conftest import make_settings
from tests.factories import (
    PNG_1PX,
    Users,
    create_model,
    create_users,
    dataset_zip,
    ok,
    upload_weights,
    weights_file,
)
from tests.s3 import Bucket, create_bucket
from tests.testclient import TestClient
from trainhub.cli import app as cli_app
from trainhub.server.app import create_app
from trainhub.server.state import hub_state

runner = CliRunner()


def hub_files(app: FastAPI, users: Users, tmp_path: Path) -> dict[str, bytes]:
    """Fill a hub; return every download link with the bytes it must serve."""
    files: dict[str, bytes] = {}
    with TestClient(app, headers={"x-api-key": users.alice.key}) as alice:
        model_id = create_model(alice)
        last, _ = weights_file(tmp_path / "last.pt", size=3000)
        best, _ = weights_file(tmp_path / "best.pt", size=70_000)
        ok(upload_weights(alice, model_id, last, epoch=1))
        ok(upload_weights(alice, model_id, best, final=True, epoch=1))
        record = ok(alice.get(f"/v1/models/{model_id}"))
        files[record["weights"]] = best.read_bytes()
        files[record["resume"]] = last.read_bytes()
        dataset_id = ok(alice.post("/v1/datasets", json={"meta": {"name": "d"}}))["id"]
        archive = dataset_zip("shapes")
        stored = ok(
            alice.post(
                f"/v1/datasets/{dataset_id}/upload",
                files={"shapes.zip": ("shapes.zip", archive)},
            )
        )
        files[stored["url"]] = archive
        project_id = ok(alice.post("/v1/projects", json={"meta": {"name": "p"}}))["id"]
        cover = alice.post(
            f"/v1/projects/{project_id}/upload", files={"file": ("c.png", PNG_1PX, "image/png")}
        )
        assert cover.status_code == 200, cover.text
        files[ok(alice.get(f"/v1/projects/{project_id}"))["cover"]] = PNG_1PX
    return files


def cli(*args: str) -> str:
    result = runner.invoke(cli_app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def where(data_dir: Path, database_url: str, storage_url: str | None) -> list[str]:
    return [
        "--data-dir",
        str(data_dir),
        "--database-url",
        database_url,
        *(["--storage-url", storage_url] if storage_url else []),
    ]


CASES = {
    "sqlite-folder": ("sqlite", "sqlite", "local", None),
    "postgresql-seaweedfs": ("postgresql", "postgresql", "seaweedfs", None),
    "sqlite-to-postgresql-portable": ("sqlite", "postgresql", "local", "portable"),
    "postgresql-portable": ("postgresql", "postgresql", "local", "portable"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_restored_backup_serves_the_same_hub(
    case: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    source_kind, target_kind, storage_kind, fmt = CASES[case]

    def database(kind: str, name: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / name / 'trainhub.db'}"
        make: Callable[[], str] = request.getfixturevalue("make_postgres_database")
        return make()

    def storage(name: str) -> str | None:
        if storage_kind == "local":
            return None
        bucket: Bucket = request.getfixturevalue("s3_bucket")
        return f"s3://{create_bucket(bucket.endpoint_url).name}/hub"

    source_db, source_storage = database(source_kind, "source"), storage("source")
    settings = make_settings(
        tmp_path / "source", source_db, storage_url=source_storage, secret_key=None
    )
    (tmp_path / "source").mkdir(exist_ok=True)
    app = create_app(settings)
    try:
        users = create_users(hub_state(app).db)
        files = hub_files(app, users, tmp_path)
    finally:
        hub_state(app).db.dispose()

    folder = tmp_path / "backup"
    options = ["--format", fmt] if fmt else []
    made = cli(
        "backup", str(folder), *options, *where(settings.data_dir, source_db, source_storage)
    )
    assert f"and {len(files)} blobs" in made
    manifest = json.loads((folder / "manifest.json").read_text())
    assert len(manifest["blobs"]) == len(files)
    assert manifest["database_format"] == fmt or {"sqlite": "sqlite"}.get(source_kind, "pg_dump")
    assert (folder / "secret_key").is_file()
    assert folder.stat().st_mode & 0o077 == 0

    target_db, target_storage = database(target_kind, "target"), storage("target")
    target_dir = tmp_path / "target" / "data"
    restored = cli("restore", str(folder), *where(target_dir, target_db, target_storage))
    assert f"and {len(files)} blobs" in restored

    again = create_app(
        make_settings(tmp_path / "target", target_db, storage_url=target_storage, secret_key=None)
    )
    try:
        with TestClient(again, headers={"x-api-key": users.alice.key}) as alice:
            assert ok(alice.post("/v1/auth"))["name"] == "alice"
            for link, data in files.items():  # links made before the backup
                answer = alice.get(link.removeprefix("http://testserver"))
                assert answer.status_code == 200 and answer.content == data, link
            model_id = create_model(alice)  # new rows get new sequence numbers
            assert ok(alice.get(f"/v1/models/{model_id}"))["id"] == model_id
    finally:
        hub_state(again).db.dispose()


def test_restore_refuses_a_database_that_holds_a_hub_and_a_damaged_backup(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path / "hub", database_url)
    app = create_app(settings)
    try:
        users = create_users(hub_state(app).db)
        hub_files(app, users, tmp_path)
    finally:
        hub_state(app).db.dispose()
    folder = tmp_path / "backup"
    cli("backup", str(folder), *where(settings.data_dir, database_url, None))
    again = runner.invoke(
        cli_app, ["backup", str(folder), *where(settings.data_dir, database_url, None)]
    )
    assert again.exit_code == 1 and "is not empty; name a new folder" in again.output

    onto = runner.invoke(
        cli_app, ["restore", str(folder), *where(settings.data_dir, database_url, None)]
    )
    assert onto.exit_code == 1 and "already holds a hub; restore into an empty one" in onto.output

    blob = next(p for p in (folder / "blobs").rglob("*") if p.is_file())
    blob.write_bytes(blob.read_bytes() + b"!")
    fresh = f"sqlite:///{tmp_path / 'fresh' / 'trainhub.db'}"
    damaged = runner.invoke(
        cli_app, ["restore", str(folder), *where(tmp_path / "fresh", fresh, None)]
    )
    assert damaged.exit_code == 1 and "in the backup is damaged" in damaged.output
    assert not (tmp_path / "fresh" / "trainhub.db").exists()
