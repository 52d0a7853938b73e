"""`trainhub datasets upload|list`: dataset archives on the hub (`trainhub datasets` lists)."""

from itertools import islice
from pathlib import Path

import typer

from trainhub.cli.hub import DEFAULT_LIMIT, LIMIT_OPTION, connect, fail, progress_bar
from trainhub.client.api import HubClient
from trainhub.client.errors import TrainhubError
from trainhub.client.transfer import file_sha256

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")

datasets_app = typer.Typer(help="Dataset archives on the hub: list (the default), upload.")


def archive_stem(path: Path) -> str:
    """Return an archive's name without its suffix; exit 1 unless it is a dataset archive."""
    for suffix in ARCHIVE_SUFFIXES:
        if path.name.lower().endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    fail(f"{path} is not a dataset archive; pack the dataset as .zip, .tar, .tar.gz or .tgz")


def discard(hub: HubClient, dataset_id: str) -> None:
    """Delete a dataset whose upload failed, so no empty one is left behind (best effort)."""
    try:
        hub.delete_dataset(dataset_id)
    except TrainhubError as exc:
        typer.echo(f"warning: could not delete the empty dataset {dataset_id}: {exc}", err=True)


@datasets_app.command("upload")
def datasets_upload(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="The archive to upload."),
    name: str | None = typer.Option(None, "--name", help="Dataset name (default: file name)."),
    public: bool = typer.Option(False, "--public", help="Let everyone see it."),
) -> None:
    """Create a dataset from an archive (.zip, .tar, .tar.gz, .tgz); print its id last."""
    stem = archive_stem(path)
    if path.stat().st_size == 0:
        fail(f"{path} is empty (0 bytes); pack the dataset into it first")
    sha256 = file_sha256(path)
    with connect() as hub:
        dataset_id = hub.create_dataset(name or stem, path.name, public=public)
        try:
            progress = progress_bar(path.stat().st_size, f"uploading {path.name}")
            answer = hub.upload_dataset(dataset_id, path, sha256=sha256, progress=progress)
        except (TrainhubError, OSError) as exc:
            discard(hub, dataset_id)
            if isinstance(exc, OSError):
                fail(f"cannot read {path} ({exc}); nothing was uploaded")
            raise
    if answer.data.sha256 != sha256:
        fail(f"the hub stored sha256 {answer.data.sha256}, not {sha256}; upload {path} again")
    typer.echo(f"{answer.message or 'uploaded'}; dataset {answer.data.meta.get('name')!r}:")
    typer.echo(dataset_id)


@datasets_app.callback(invoke_without_command=True)
def datasets_default(ctx: typer.Context) -> None:
    """Dataset archives on the hub: list (the default), upload."""
    if ctx.invoked_subcommand is None:
        datasets_list(public=False, limit=DEFAULT_LIMIT)


@datasets_app.command("list")
def datasets_list(
    public: bool = typer.Option(False, "--public", help="Everyone's public datasets, not yours."),
    limit: int = LIMIT_OPTION,
) -> None:
    """List your datasets, newest first."""
    with connect() as hub:
        pages = hub.iter_datasets(public=public, page_size=min(limit, 100))
        records = list(islice(pages, limit))
    if not records:
        typer.echo("no datasets yet; upload one with `trainhub datasets upload ARCHIVE`")
        return
    typer.echo(f"{'ID':<20}  {'STATUS':<6}  {'BYTES':>11}  {'FILE':<24}  NAME")
    for r in records:
        size = "-" if r.size_bytes is None else str(r.size_bytes)
        name = r.meta.get("name", "")
        typer.echo(f"{r.id:<20}  {r.status:<6}  {size:>11}  {r.filename or '-':<24}  {name}")
