"""Client commands: `login`, `logout`, `whoami`, `models ...`, `datasets ...` and `sync`.

They talk to a hub over HTTP with the key `trainhub login` saved (or TRAINHUB_URL and
TRAINHUB_API_KEY), so they need only the base install. The operator commands are in admin.py.
"""

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
import typer
from pydantic import ValidationError
from tqdm import tqdm

from trainhub import __version__
from trainhub.client import credentials
from trainhub.client.api import USER_AGENT, HubClient, Identity
from trainhub.client.errors import (
    ApiError,
    ConfigError,
    HubUnreachable,
    NotAuthenticated,
    NotFound,
    TrainhubError,
    create_api_error,
)
from trainhub.client.outbox import Outbox
from trainhub.client.retry import failure_message
from trainhub.client.transfer import MultipartFile, Progress, file_sha256
from trainhub.client.uploader import Uploader
from trainhub.protocol import paths
from trainhub.protocol.envelope import CreatedRecord, Envelope, Page
from trainhub.protocol.identifiers import parse_identifier
from trainhub.protocol.records import DatasetRecord, ModelRecord

T = TypeVar("T")
CLI_RETRIES = 2
SYNC_TIMEOUT_S = 300.0
# flush() ignores the metrics and checkpoint limits; heartbeats are off while syncing
SYNC_RATE_LIMITS = {"metrics": 0.0, "ckpt": 0.0, "heartbeat": 30.0}
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# the hub inspects a whole archive before it answers an upload
ARCHIVE_CHECK_TIMEOUT = httpx.Timeout(30.0, read=600.0)
MODEL_ARGUMENT = typer.Argument(..., help="A model id or URL (<hub>/models/<id>).")

models_app = typer.Typer(
    help="Models on the hub: list, show, create, download.", no_args_is_help=True
)
datasets_app = typer.Typer(help="Dataset archives on the hub: upload, list.", no_args_is_help=True)


class WeightsKind(StrEnum):
    """Which weights file of a model to download."""

    best = "best"
    last = "last"


# --- plumbing ------------------------------------------------------------------------------


def fail(message: str) -> NoReturn:
    """Print `message` on stderr and exit with status 1."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def quiet_http_logs() -> None:
    """Keep httpx's INFO line per request out of command output (--log-level DEBUG shows it)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)


@contextmanager
def hub_errors() -> Iterator[None]:
    """Turn a client error raised in the block into its message and exit status 1."""
    try:
        yield
    except TrainhubError as exc:
        fail(str(exc))


@contextmanager
def connect(url: str | None = None, api_key: str | None = None) -> Iterator[HubClient]:
    """Yield a HubClient for the credentials found (see credentials.resolve); errors exit 1."""
    quiet_http_logs()
    with hub_errors():
        found = credentials.resolve(url, api_key)
        with HubClient(found.url, found.api_key, retries=CLI_RETRIES) as hub:
            yield hub


def describe(identity: Identity) -> str:
    """Return a user's name, marked when an admin."""
    return identity.name + (" (admin)" if identity.is_admin else "")


def note_overrides() -> None:
    """Say which variables take precedence over the credentials file."""
    for env in (*credentials.URL_ENVS, *credentials.KEY_ENVS):
        if os.environ.get(env, "").strip():
            what = "URL" if env in credentials.URL_ENVS else "key"
            typer.echo(f"note: ${env} is set; it takes precedence over the saved {what}")


# --- login, logout, whoami -----------------------------------------------------------------


def login(
    key: str = typer.Argument(..., help="Your API key (the hub shows it once, when created)."),
    server: str | None = typer.Option(
        None,
        "--server",
        help="Hub URL such as http://hub:8000 (default: $TRAINHUB_URL, then the saved one).",
        show_default=False,
    ),
) -> None:
    """Check an API key with the hub and save it for later commands and training runs."""
    with connect(server, key) as hub:
        try:
            me = hub.authenticate()
        except NotAuthenticated as exc:
            fail(
                f"the hub at {hub.url} refused this key ({exc.message}); check that you "
                "copied all of it, or ask an operator for a new one "
                "(`trainhub keys create --user NAME`); nothing was saved"
            )
        path = credentials.save(hub.url, key)
    typer.echo(f"logged in to {hub.url} as {describe(me)}; key saved to {path}")
    note_overrides()


def logout() -> None:
    """Forget the saved API key (delete the file `trainhub login` wrote)."""
    path = credentials.credentials_path()
    if credentials.forget():
        typer.echo(f"logged out: removed {path}")
    else:
        typer.echo(f"nothing to forget: {path} does not exist")
    note_overrides()


def whoami() -> None:
    """Show which user and hub the current credentials belong to."""
    with connect() as hub:
        me = hub.authenticate()
    typer.echo(f"{describe(me)} on {hub.url}")


# --- models --------------------------------------------------------------------------------


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


@models_app.command("list")
def models_list(
    public: bool = typer.Option(False, "--public", help="Everyone's public models, not yours."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many, newest first."),
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
    """Return a create payload in hub-sdk's shape (hub-protocol.md §5.4)."""
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
    hint = (
        "try --kind last for its latest checkpoint"
        if kind is WeightsKind.best and record.has_last_weights
        else "train it first"
    )
    fail(f"model {record.id} has no {kind} weights yet (status {record.status}); {hint}")


def destination(url: str, output: Path | None) -> Path:
    """Return where a download goes: --output (a file, or a folder for the hub's file name)."""
    name = url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    if output is None:
        return Path.cwd() / name
    return output / name if output.is_dir() else output


@models_app.command("download")
def models_download(
    model: str = MODEL_ARGUMENT,
    kind: WeightsKind = typer.Option(
        WeightsKind.best, "--kind", help="best: final weights; last: latest checkpoint."
    ),
    output: Path | None = typer.Option(
        None, "--output", help="File or folder to save to (default: the hub's file name here)."
    ),
) -> None:
    """Download a model's weights; the sha256 is checked against the hub's before it is kept."""
    target = model_target(model)
    with connect(target.url, target.api_key) as hub:
        url = weights_url(get_model(hub, target.model_id), kind)
        path = destination(url, output)
        sha256 = hub.download(url, path)
    typer.echo(f"saved {path} ({path.stat().st_size} bytes, sha256 {sha256})")


# --- datasets ------------------------------------------------------------------------------


class DatasetCalls:
    """The dataset endpoints HubClient lacks, sent once each with the same key and timeout.

    A stopgap until HubClient has create_dataset/upload_dataset/list_datasets: no retries, since
    a create is not safe to repeat and an archive upload is cheap to start again by hand.
    """

    def __init__(self, found: credentials.Credentials, timeout_s: float = 30.0) -> None:
        self.url = found.url
        headers = {
            paths.API_KEY_HEADER: found.api_key,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        self._http = httpx.Client(headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def create_dataset(self, name: str, filename: str, public: bool) -> str:
        """Create an empty dataset; return its id."""
        body = {"meta": {"name": name}, "filename": filename, "public": public}
        request = self._http.build_request("POST", self.url + paths.DATASETS, json=body)
        return self._send(request, Envelope[CreatedRecord]).data.id

    def upload_dataset(
        self, dataset_id: str, path: Path, sha256: str, progress: Progress | None
    ) -> Envelope[DatasetRecord]:
        """Stream an archive from disk into a dataset; return the hub's answer."""
        file = MultipartFile.create(path, {}, path.name, sha256, progress)
        url = self.url + paths.DATASET_UPLOAD.format(dataset_id=dataset_id)
        body = file.stream()
        try:
            request = self._http.build_request(
                "POST", url, content=body, headers=file.headers(), timeout=ARCHIVE_CHECK_TIMEOUT
            )
            return self._send(request, Envelope[DatasetRecord])
        finally:
            body.close()

    def delete_dataset(self, dataset_id: str) -> None:
        """Delete a dataset with everything in it."""
        url = self.url + paths.DATASET.format(dataset_id=dataset_id)
        request = self._http.build_request("DELETE", url, params={"hard": "true"})
        self._send(request, Envelope[dict[str, Any]])

    def list_datasets(self, *, public: bool, limit: int) -> list[DatasetRecord]:
        """Return up to `limit` datasets, newest first (yours, or everyone's public ones)."""
        found: list[DatasetRecord] = []
        cursor: str | None = None
        while len(found) < limit:
            params: dict[str, str | int] = {"limit": min(limit - len(found), 100)}
            params.update({"public": "true"} if public else {})
            params.update({"last_doc_id": cursor} if cursor else {})
            request = self._http.build_request("GET", self.url + paths.DATASETS, params=params)
            page = self._send(request, Envelope[Page[DatasetRecord]]).data
            found += page.results
            if not page.results or not page.lastRecordId or page.lastRecordId == cursor:
                break
            cursor = page.lastRecordId
        return found[:limit]

    def _send(self, request: httpx.Request, shape: type[Envelope[T]]) -> Envelope[T]:
        try:
            response = self._http.send(request)
        except httpx.HTTPError as exc:
            raise HubUnreachable(
                f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}; check "
                f"that the hub at {self.url} is running and reachable from this machine"
            ) from exc
        if not response.is_success:
            message = failure_message(response.status_code, response.headers, response.content)
            raise create_api_error(response.status_code, message)
        try:
            return shape.model_validate_json(response.content)
        except ValidationError as exc:
            raise ApiError(
                response.status_code,
                f"the answer to {request.url} is not what a trainhub server sends; "
                "check that the URL points at the hub's API",
            ) from exc


@contextmanager
def dataset_calls() -> Iterator[DatasetCalls]:
    """Yield DatasetCalls for the credentials found; errors exit 1."""
    quiet_http_logs()
    with hub_errors():
        calls = DatasetCalls(credentials.resolve())
        try:
            yield calls
        finally:
            calls.close()


def archive_stem(path: Path) -> str:
    """Return an archive's name without its suffix; exit 1 unless it is a dataset archive."""
    for suffix in ARCHIVE_SUFFIXES:
        if path.name.lower().endswith(suffix) and len(path.name) > len(suffix):
            return path.name[: -len(suffix)]
    fail(f"{path} is not a dataset archive; pack the dataset as .zip, .tar, .tar.gz or .tgz")


def discard(calls: DatasetCalls, dataset_id: str) -> None:
    """Delete a dataset whose upload failed, so no empty one is left behind (best effort)."""
    try:
        calls.delete_dataset(dataset_id)
    except TrainhubError as exc:
        typer.echo(f"warning: could not delete the empty dataset {dataset_id}: {exc}", err=True)


def progress_bar(total_bytes: int, what: str) -> Progress:
    """Return a progress callback drawing a byte bar on stderr (only on a terminal)."""
    bar = tqdm(
        total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=what, disable=None
    )

    def advance(sent: int) -> None:
        bar.update(sent)
        if bar.n >= total_bytes:
            bar.close()

    return advance


@datasets_app.command("upload")
def datasets_upload(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="The archive to upload."),
    name: str | None = typer.Option(None, "--name", help="Dataset name (default: file name)."),
    public: bool = typer.Option(False, "--public", help="Let everyone see it."),
) -> None:
    """Create a dataset from an archive (.zip, .tar, .tar.gz, .tgz); print its id last."""
    stem = archive_stem(path)
    sha256 = file_sha256(path)
    with dataset_calls() as calls:
        dataset_id = calls.create_dataset(name or stem, path.name, public)
        try:
            progress = progress_bar(path.stat().st_size, f"uploading {path.name}")
            answer = calls.upload_dataset(dataset_id, path, sha256, progress)
        except (TrainhubError, OSError) as exc:
            discard(calls, dataset_id)
            if isinstance(exc, OSError):
                fail(f"cannot read {path} ({exc}); nothing was uploaded")
            raise
    if answer.data.sha256 != sha256:
        fail(f"the hub stored sha256 {answer.data.sha256}, not {sha256}; upload {path} again")
    typer.echo(f"{answer.message or 'uploaded'}; dataset {answer.data.meta.get('name')!r}:")
    typer.echo(dataset_id)


@datasets_app.command("list")
def datasets_list(
    public: bool = typer.Option(False, "--public", help="Everyone's public datasets, not yours."),
    limit: int = typer.Option(20, "--limit", min=1, help="Show at most this many, newest first."),
) -> None:
    """List your datasets, newest first."""
    with dataset_calls() as calls:
        records = calls.list_datasets(public=public, limit=limit)
    if not records:
        typer.echo("no datasets yet; upload one with `trainhub datasets upload ARCHIVE`")
        return
    typer.echo(f"{'ID':<20}  {'STATUS':<6}  {'BYTES':>11}  {'FILE':<24}  NAME")
    for r in records:
        size = "-" if r.size_bytes is None else str(r.size_bytes)
        name = r.meta.get("name", "")
        typer.echo(f"{r.id:<20}  {r.status:<6}  {size:>11}  {r.filename or '-':<24}  {name}")


# --- sync ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncReport:
    """What `sync_model` sent of one model and what is still in the outbox."""

    server: str
    model_id: str
    sent: tuple[int, int]  # (epochs of metrics, uploads)
    left: tuple[int, int]
    problem: str | None = None

    def describe(self) -> str:
        """Return one line for the user."""
        head = f"model {self.model_id} on {self.server}: sent {counted(self.sent)}"
        if self.left == (0, 0):
            return f"{head}; nothing left"
        return f"{head}; left {counted(self.left)} ({self.problem or 'not sent in time'})"


def counted(counts: tuple[int, int]) -> str:
    """Return '3 epochs of metrics and 1 upload' for (3, 1)."""
    metrics, uploads = counts
    if counts == (0, 0):
        return "nothing"
    return (
        f"{metrics} epoch{'s' * (metrics != 1)} of metrics and "
        f"{uploads} upload{'s' * (uploads != 1)}"
    )


def upload_bar(total_bytes: int, kind: str) -> Progress:
    """Return a progress callback for one upload of the outbox."""
    return progress_bar(total_bytes, f"uploading {'final weights' if kind == 'final' else kind}")


def sync_model(outbox: Outbox, hub: HubClient, model_id: str, timeout_s: float) -> SyncReport:
    """Send what the outbox holds for one model (no heartbeats); wait at most `timeout_s`."""
    before = outbox.counts(hub.url, model_id)
    uploader = Uploader(
        hub,
        outbox,
        model_id,
        rate_limits=dict(SYNC_RATE_LIMITS),
        agent=f"trainhub-sync-{__version__}",
        heartbeats=False,
        progress=upload_bar,
    )
    uploader.start()
    try:
        uploader.flush(timeout_s)
    finally:
        uploader.stop()
    left = outbox.counts(hub.url, model_id)
    sent = (before[0] - left[0], before[1] - left[1])
    return SyncReport(hub.url, model_id, sent, left, uploader.paused)


def sync_server(outbox: Outbox, server: str, model_id: str, timeout_s: float) -> SyncReport:
    """Find the key for `server` and send one model's part of the outbox."""
    try:
        found = credentials.resolve(url=server)
    except ConfigError as exc:
        return SyncReport(server, model_id, (0, 0), outbox.counts(server, model_id), str(exc))
    with HubClient(found.url, found.api_key, retries=1) as hub:
        return sync_model(outbox, hub, model_id, timeout_s)


def sync(
    timeout: float = typer.Option(
        SYNC_TIMEOUT_S, "--timeout", min=0.0, help="Seconds to wait for each model at most."
    ),
) -> None:
    """Send what training runs left in the outbox (metrics and final weights) to their hubs."""
    quiet_http_logs()
    outbox, left = Outbox(), False
    try:
        pending = outbox.pending_models()
        if not pending:
            typer.echo(f"nothing to send: the outbox {outbox.path} is empty")
        for server, model_id in pending:
            report = sync_server(outbox, server, model_id, timeout)
            typer.echo(report.describe())
            left = left or report.left != (0, 0)
    finally:
        outbox.close()
    if left:
        fail(f"what is left stays in {outbox.path}; run `trainhub sync` again once the hub is up")


def register(app: typer.Typer) -> None:
    """Add the client commands to the `trainhub` app."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("whoami")(whoami)
    app.add_typer(models_app, name="models")
    app.add_typer(datasets_app, name="datasets")
    app.command("sync")(sync)
