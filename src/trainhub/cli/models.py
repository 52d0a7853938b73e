"""`trainhub models list|show|create|download`: the models on the hub, by id or URL.

`trainhub models` alone lists them.
"""

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any

import typer

from trainhub.cli.hub import DEFAULT_LIMIT, LIMIT_OPTION, connect, fail
from trainhub.client.api import HubClient
from trainhub.client.errors import NotFound
from trainhub.protocol.identifiers import parse_identifier
from trainhub.protocol.records import ModelRecord

MODEL_ARGUMENT = typer.Argument(..., help="A model id or URL (<hub>/models/<id>).")

models_app = typer.Typer(help="Models on the hub: list (the default), show, create, download.")


class WeightsKind(StrEnum):
    """Which weights file of a model to download."""

    best = "best"
    last = "last"


@dataclass(frozen=True)
class ModelTarget:
    """A model named on the command line, with the hub and key its URL carries (if any)."""

    model_id: str
    url: str | None
    api_key: str | None


def model_target(value: str) -> ModelTarget:
    """Parse a model id or URL given on the command line; exit 1 when it names no model."""
    try:
        parsed = parse_identifier(value)
    except ValueError as exc:
        fail(str(exc))
    if parsed.model_id is None:
        fail(f"{value!r} is a local file; pass a model id or a URL such as <hub>/models/<id>")
    return ModelTarget(parsed.model_id, parsed.server, parsed.api_key)


def get_model(hub: HubClient, model_id: str) -> ModelRecord:
    """Return a model record; exit 1 with a hint when the hub has no such model."""
    try:
        return hub.get_model(model_id)
    except NotFound as exc:
        fail(f"{exc.message}; list your models with `trainhub models list`")


def extra(record: ModelRecord, name: str) -> Any:
    """Return a field the server adds to the record beyond the protocol's (None if absent)."""
    return (record.model_extra or {}).get(name)


def epochs_done(record: ModelRecord) -> str:
    """Return 'done/planned' epochs (the hub keeps the last 0-based epoch it saw)."""
    last = extra(record, "epoch")
    return f"{0 if last is None else last + 1}/{record.epochs or '?'}"


@models_app.callback(invoke_without_command=True)
def models_default(ctx: typer.Context) -> None:
    """Models on the hub: list (the default), show, create, download."""
    if ctx.invoked_subcommand is None:
        models_list(public=False, limit=DEFAULT_LIMIT)


@models_app.command("list")
def models_list(
    public: bool = typer.Option(False, "--public", help="Everyone's public models, not yours."),
    limit: int = LIMIT_OPTION,
) -> None:
    """List your models, newest first."""
    with connect() as hub:
        pages = hub.iter_models(public=public or None, page_size=min(limit, 100))
        records = list(islice(pages, limit))
    if not records:
        typer.echo("no models yet; create one with `trainhub models create NAME`")
        return
    typer.echo(f"{'ID':<20}  {'STATUS':<8}  {'EPOCHS':>7}  NAME")
    for record in records:
        name = record.meta.get("name", "")
        typer.echo(f"{record.id:<20}  {record.status:<8}  {epochs_done(record):>7}  {name}")


def metric_epochs(hub: HubClient, model_id: str) -> int:
    """Return how many epochs have metrics on the hub."""
    return len({epoch for series in hub.get_metrics(model_id) for epoch in series.data})


def show_lines(record: ModelRecord, hub: HubClient) -> list[tuple[str, str]]:
    """Return the label and text of each line `models show` prints."""
    weights = [kind for kind in ("best", "last") if getattr(record, f"has_{kind}_weights")]
    heartbeat = extra(record, "lastHeartbeat")
    best_map = extra(record, "map")
    return [
        ("name", str(record.meta.get("name", ""))),
        ("url", extra(record, "url") or f"{hub.url}/models/{record.id}"),
        ("status", record.status),
        ("epochs", f"{epochs_done(record)} (metrics for {metric_epochs(hub, record.id)})"),
        ("best mAP", "-" if best_map is None else f"{best_map:.4f}"),
        ("weights", ", ".join(weights) or "none yet"),
        ("online", f"{'yes' if extra(record, 'online') else 'no'} (last beat {heartbeat or '-'})"),
        ("dataset", str(record.dataset.get("name") or record.data or "-")),
        ("train args", json.dumps(record.train_args)),
    ]


@models_app.command("show")
def models_show(
    model: str = MODEL_ARGUMENT,
    as_json: bool = typer.Option(False, "--json", help="Print the record as the hub sent it."),
) -> None:
    """Show a model: status, epochs, weights, whether a trainer is online, train arguments."""
    target = model_target(model)
    with connect(target.url, target.api_key) as hub:
        record = get_model(hub, target.model_id)
        lines = [] if as_json else show_lines(record, hub)
    if as_json:
        typer.echo(json.dumps(record.model_dump(), indent=2))
        return
    for label, text in lines:
        typer.echo(f"{label + ':':<12} {text}")


def model_payload(
    name: str, *, arch: str, config: dict[str, int], dataset: str | None, project: str | None
) -> dict[str, object]:
    """Return a create payload in hub-sdk's shape (docs/protocol/hub-v1.md §5.4)."""
    payload: dict[str, object] = {
        "meta": {"name": name},
        "config": config,
        "lineage": {"architecture": {"name": arch}},
    }
    if dataset:
        payload["datasetId"] = dataset
    if project:
        payload["projectId"] = project
    return payload


@models_app.command("create")
def models_create(
    name: str = typer.Argument(..., help="A name to show in lists and the dashboard."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset id to train on."),
    project: str | None = typer.Option(None, "--project", help="Project id to file it under."),
    epochs: int = typer.Option(100, "--epochs", min=1, help="Epochs to train."),
    imgsz: int = typer.Option(640, "--imgsz", min=1, help="Image size in pixels."),
    batch: int = typer.Option(16, "--batch", min=-1, help="Batch size (-1: as large as fits)."),
    arch: str = typer.Option("yolo11n", "--arch", help="Architecture to build the model from."),
    public: bool = typer.Option(False, "--public", help="Let everyone see it."),
) -> None:
    """Create a model to train; its URL, which trainers accept, is the last line printed."""
    config = {"epochs": epochs, "imageSize": imgsz, "batchSize": batch}
    payload = model_payload(name, arch=arch, config=config, dataset=dataset, project=project)
    payload["public"] = public
    with connect() as hub:
        model_id = hub.create_model(payload)
    typer.echo(f"created model {name!r} ({model_id}); pass its URL to your trainer:")
    typer.echo(f"{hub.url}/models/{model_id}")


def weights_url(record: ModelRecord, kind: WeightsKind) -> str:
    """Return the download URL of a model's best or last weights; exit 1 when there are none."""
    if kind is WeightsKind.best and record.has_best_weights and record.weights:
        return record.weights
    if kind is WeightsKind.last and record.has_last_weights and record.resume:
        return record.resume
    fail(
        f"model {record.id} has no {kind} weights (status {record.status}); {weights_hint(record)}"
    )


def weights_hint(record: ModelRecord) -> str:
    """Say which weights a model does have, and how to download them."""
    if record.has_best_weights and record.weights:
        return "it has its final weights: download them with --kind best (the default)"
    if record.has_last_weights and record.resume:
        return "it has a checkpoint of its latest epoch: download it with --kind last"
    return "it has none yet; train it first"


def destination(url: str, output: str | None) -> Path:
    """Return where a download goes: --output (a file, or a folder for the hub's file name).

    An existing folder, or a path ending in a slash (created if need be), is a folder.
    """
    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if output is None:
        return Path.cwd() / name
    path = Path(output)
    is_folder = path.is_dir() or output.endswith(("/", os.sep))
    return path / name if is_folder else path


@models_app.command("download")
def models_download(
    model: str = MODEL_ARGUMENT,
    kind: WeightsKind = typer.Option(
        WeightsKind.best, "--kind", help="best: final weights; last: latest checkpoint."
    ),
    output: str | None = typer.Option(
        None,
        "--output",
        help="File, or folder (existing, or ending in /) to save to under the hub's file name "
        "(default: the hub's file name in the current folder).",
        show_default=False,
    ),
) -> None:
    """Download a model's weights; the sha256 is checked against the hub's before it is kept."""
    target = model_target(model)
    with connect(target.url, target.api_key) as hub:
        url = weights_url(get_model(hub, target.model_id), kind)
        path = destination(url, output)
        sha256 = hub.download(url, path)
    typer.echo(f"saved {path} ({path.stat().st_size} bytes, sha256 {sha256})")
