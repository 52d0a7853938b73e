"""Operations commands: `trainhub gc`, `trainhub backup` and `trainhub restore`.

Like `users` and `db`, they find the hub's database and storage as the server does
(--data-dir, --database-url, --storage-url, TRAINHUB_* variables, then ./trainhub-data), work
while the server runs or is down, and never create a database.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import typer

from trainhub.cli.admin import DATA_DIR, DATABASE_URL
from trainhub.cli.hub import fail
from trainhub.cli.startup import (
    check_data_dir,
    first_line,
    load_settings,
    open_database,
    require_server_stack,
)

STORAGE_URL = typer.Option(
    None,
    "--storage-url",
    help="The hub's blob storage, as given to the server (TRAINHUB_STORAGE_URL).",
    show_default=False,
)


def open_storage(data_dir: Path | None, storage_url: str | None, *, sweep: bool) -> Any:
    """Return the storage the options name; exit 2 with one line when it cannot be opened."""
    from trainhub.server.storage import from_url

    settings = load_settings(data_dir=data_dir, storage_url=storage_url)
    try:
        return from_url(settings.resolved_storage_url(), settings.data_dir / "spool", sweep=sweep)
    except ValueError as exc:
        fail(str(exc), 2)


def gc(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; remove nothing."),
    grace_s: float = typer.Option(
        3600.0,
        "--grace-s",
        min=0,
        help="Leave alone what is younger than this (uploads in flight).",
    ),
    upload_expiry_s: float = typer.Option(
        24 * 3600.0,
        "--upload-expiry-s",
        min=0,
        help="Drop resumable uploads nothing was appended to for this long.",
    ),
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
    storage_url: str | None = STORAGE_URL,
) -> None:
    """Remove orphaned blobs, expired resumable uploads and leftovers of interrupted uploads."""
    require_server_stack("gc")
    from sqlalchemy.exc import SQLAlchemyError

    from trainhub.server.services.gc import collect_garbage
    from trainhub.server.storage import StorageError

    with open_database(data_dir, database_url) as db:
        storage = open_storage(data_dir, storage_url, sweep=False)
        try:
            collection = collect_garbage(
                db,
                storage,
                grace=timedelta(seconds=grace_s),
                upload_expiry=timedelta(seconds=upload_expiry_s),
                dry_run=dry_run,
            )
        except (StorageError, SQLAlchemyError) as exc:
            fail(f"nothing was removed: {exc}")
    for item in collection.found if dry_run else collection.removed:
        typer.echo(f"{'would remove' if dry_run else 'removed'} {item.kind}: {item.what}")
    for item, reason in collection.failed:
        typer.echo(f"could not remove {item.what}: {reason}", err=True)
    verb = "would remove" if dry_run else "removed"
    typer.echo(f"{verb} {collection.summary()}", err=True)
    if collection.failed:
        raise typer.Exit(1)


FORMAT = typer.Option(
    None,
    "--format",
    help="sqlite, pg_dump or portable (default: sqlite for SQLite, pg_dump for PostgreSQL when "
    "installed, else portable).",
    show_default=False,
)


def backup(
    folder: Path = typer.Argument(..., help="A new (or empty) folder for the backup."),
    fmt: str | None = FORMAT,
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
    storage_url: str | None = STORAGE_URL,
) -> None:
    """Back up the hub: a consistent database snapshot and the blobs it names, into FOLDER."""
    require_server_stack("backup")
    from trainhub.server.db import dumps
    from trainhub.server.filemodes import restrict_umask
    from trainhub.server.services.backup import BackupError, create_backup
    from trainhub.server.storage import StorageError

    restrict_umask()  # the backup holds everything the hub holds
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    with open_database(data_dir, database_url) as db:
        url = db.url
        storage = open_storage(data_dir, storage_url, sweep=False)
    chosen = fmt or dumps.default_format(url)
    try:
        dumps.check_format(url, chosen)
        summary = create_backup(
            url, storage, folder, fmt=chosen, secret=settings.data_dir / "secret_key"
        )
    except (BackupError, dumps.DumpError, StorageError) as exc:
        fail(f"backup failed: {exc}")
    typer.echo(
        f"backed up the database ({summary.database_format}) and {summary.blob_count} blobs "
        f"({summary.blob_bytes} bytes) to {folder}"
    )


def restore(
    folder: Path = typer.Argument(..., help="A folder `trainhub backup` wrote."),
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
    storage_url: str | None = STORAGE_URL,
) -> None:
    """Restore a backup into an empty database and the hub's storage (the server stopped)."""
    require_server_stack("restore")
    from sqlalchemy.exc import SQLAlchemyError

    from trainhub.server.db import dumps
    from trainhub.server.db.engine import describe_url
    from trainhub.server.filemodes import make_private_dir, restrict_umask
    from trainhub.server.services.backup import BackupError, restore_backup
    from trainhub.server.storage import StorageError

    restrict_umask()
    settings = load_settings(data_dir=data_dir, database_url=database_url)
    check_data_dir(settings.data_dir)
    make_private_dir(settings.data_dir)
    url = settings.resolved_database_url()
    storage = open_storage(data_dir, storage_url, sweep=False)
    secret = None if settings.secret_key else settings.data_dir / "secret_key"
    try:
        summary = restore_backup(folder, url, storage, secret)
    except (BackupError, dumps.DumpError, StorageError) as exc:
        fail(f"restore failed: {exc}")
    except SQLAlchemyError as exc:
        fail(f"restore failed: cannot load the database {describe_url(url)}: {first_line(exc)}")
    typer.echo(
        f"restored the database ({summary.database_format}) into {describe_url(url)} and "
        f"{summary.blob_count} blobs ({summary.blob_bytes} bytes)"
    )
