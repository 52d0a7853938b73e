"""Operations commands: `trainhub gc` (and `backup`, `restore`).

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
from trainhub.cli.startup import load_settings, open_database, require_server_stack

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
