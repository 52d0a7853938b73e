"""Backups of a whole hub: a consistent database snapshot plus exactly the blobs it names.

A backup is a folder (mode 0700):

    manifest.json       format, trainhub version, schema revision, database format, and the
                        size and sha256 of every blob
    database.sqlite3 | database.pgdump | rows.jsonl     the snapshot (db/dumps.py)
    blobs/<key>         every blob the snapshot's rows name
    secret_key          the signing secret of the data directory, when the hub keeps one there

Blobs are copied before the snapshot is taken and the ones published since are copied after
it; blobs never change once published (their keys name their content), so every blob the
snapshot names is in the backup unless it was deleted between the two passes, which fails the
backup (run it again). The server may run meanwhile. A restore checks every blob's sha256 first,
publishes the blobs, then loads the database (so no row ever names a missing blob), into an
empty database only.
"""

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainhub._version import __version__
from trainhub.server.db import dumps, migrate
from trainhub.server.db.engine import describe_url
from trainhub.server.filemodes import create_private_file, make_private_dir, make_private_dirs
from trainhub.server.storage import BlobNotFoundError, Storage, check_key
from trainhub.server.storage.spool import CHUNK_BYTES

MANIFEST = "manifest.json"
BACKUP_FORMAT = 1
SECRET_FILE = "secret_key"


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class BackupSummary:
    """What a backup holds, or what a restore put back."""

    database_format: str
    blob_count: int
    blob_bytes: int


def _copy_blob(storage: Storage, key: str, target: Path) -> dict[str, Any]:
    make_private_dirs(target.parent)
    digest, size = hashlib.sha256(), storage.size(key)
    create_private_file(target)
    with target.open("wb") as out:
        for chunk in storage.iter_range(key, 0, size - 1) if size else []:
            out.write(chunk)
            digest.update(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def create_backup(
    database_url: str, storage: Storage, folder: Path, *, fmt: str, secret: Path | None
) -> BackupSummary:
    """Write a backup of the hub (its database at `database_url`, its `storage`) to `folder`."""
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty; name a new folder for the backup")
    make_private_dir(folder)
    blobs: dict[str, dict[str, Any]] = {}
    for blob in storage.iter_blobs():
        try:
            blobs[blob.key] = _copy_blob(storage, blob.key, folder / "blobs" / blob.key)
        except BlobNotFoundError:
            continue  # deleted since it was listed: not needed unless the snapshot names it
    snapshot = dumps.dump(database_url, folder / dumps.FILE_NAMES[fmt], fmt)
    for key in sorted(snapshot.keys - set(blobs)):
        try:
            blobs[key] = _copy_blob(storage, key, folder / "blobs" / key)
        except BlobNotFoundError as exc:
            raise BackupError(
                f"blob {key}, named by the database, left storage during the backup (it was "
                f"replaced); run the backup again: {exc}"
            ) from exc
    for key in sorted(set(blobs) - snapshot.keys):  # orphans: a restore would not need them
        (folder / "blobs" / key).unlink()
        del blobs[key]
    if secret is not None and secret.is_file():
        create_private_file(folder / SECRET_FILE)
        shutil.copyfile(secret, folder / SECRET_FILE)
    manifest = {
        "format": BACKUP_FORMAT,
        "trainhub": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "schema": snapshot.revision,
        "database_format": fmt,
        "blobs": blobs,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return BackupSummary(fmt, len(blobs), sum(b["size"] for b in blobs.values()))


def read_manifest(folder: Path) -> dict[str, Any]:
    """Return a backup's manifest; BackupError when `folder` holds no backup of this kind."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"{folder} holds no trainhub backup (no readable {MANIFEST})") from exc
    if manifest.get("format") != BACKUP_FORMAT:
        raise BackupError(
            f"{folder} is a backup of format {manifest.get('format')!r}; this trainhub reads "
            f"format {BACKUP_FORMAT}"
        )
    return dict(manifest)


def _check_blobs(folder: Path, blobs: dict[str, dict[str, Any]]) -> None:
    for key, expected in sorted(blobs.items()):
        path = folder / "blobs" / check_key(key)
        digest = hashlib.sha256()
        try:
            with path.open("rb") as file:
                while chunk := file.read(CHUNK_BYTES):
                    digest.update(chunk)
        except OSError as exc:
            raise BackupError(f"the backup lacks blob {key}: {exc.strerror}") from exc
        if digest.hexdigest() != expected["sha256"]:
            raise BackupError(f"blob {key} in the backup is damaged (its sha256 differs)")


def _publish_blob(storage: Storage, folder: Path, key: str) -> None:
    writer = storage.create_writer()
    try:
        with (folder / "blobs" / key).open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                writer.write(chunk)
        writer.publish(key)
    except BaseException:
        writer.abort()
        raise


def restore_backup(
    folder: Path, database_url: str, storage: Storage, secret: Path | None
) -> BackupSummary:
    """Put the backup in `folder` back into an empty database and a storage."""
    manifest = read_manifest(folder)
    if migrate.is_created(database_url):
        raise BackupError(
            f"the database {describe_url(database_url)} already holds a hub; restore into an "
            "empty one (a new --data-dir, or a new PostgreSQL database)"
        )
    revision = manifest.get("schema")
    if revision is not None and revision not in migrate.known_revisions():
        raise BackupError(
            f"the backup's schema revision {revision!r} is newer than this trainhub "
            f"{__version__} knows; restore it with trainhub {manifest.get('trainhub')} or newer"
        )
    fmt, blobs = str(manifest["database_format"]), dict(manifest["blobs"])
    snapshot = dumps.Snapshot(fmt, manifest.get("schema"), set(blobs))
    _check_blobs(folder, blobs)
    for key in sorted(blobs):
        _publish_blob(storage, folder, key)
    dumps.load(database_url, folder / dumps.FILE_NAMES[fmt], snapshot)
    kept = folder / SECRET_FILE
    if secret is not None and kept.is_file() and not secret.exists():
        make_private_dir(secret.parent)
        create_private_file(secret)
        shutil.copyfile(kept, secret)
    return BackupSummary(fmt, len(blobs), sum(int(b["size"]) for b in blobs.values()))
