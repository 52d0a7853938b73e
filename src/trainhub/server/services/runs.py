"""Training runs reported through the Platform protocol of ultralytics 8.4.

One function per event of docs/protocol/platform.md §4.2 (the console has services/console.py,
the weights services/staging.py), plus the hub's side: cancel a run, read a model's runs. Each
opens one transaction and loads the model for writing first, so the events of one model apply
one at a time whatever order they arrive in (docs/protocol/platform.md §9.3).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from trainhub.protocol.platform import (
    DEFAULT_RUN_NAME,
    EpochEnd,
    PlatformEvent,
    TrainingComplete,
    TrainingStarted,
    slugify,
)
from trainhub.protocol.platform_metrics import epoch_values, is_final_validation, numbers_of
from trainhub.server import modelspec
from trainhub.server.db import changes, owned, slugs, staging
from trainhub.server.db import models as model_queries
from trainhub.server.db import platform_runs as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.metrics import MAIN_METRIC
from trainhub.server.db.tables import ModelRow, ProjectRow, RunRow, utcnow
from trainhub.server.errors import ConflictError, ValidationError
from trainhub.server.liveness import platform_silence_s, state_of
from trainhub.server.services import names
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.settings import Settings
from trainhub.server.storage import Storage

RETRY_WINDOW = timedelta(minutes=15)  # 4 attempts of 30 s with back-off fit well inside
CONFIG_ARGS = {
    "epochs": "epochs",
    "imgsz": "imageSize",
    "batch": "batchSize",
    "patience": "patience",
    "device": "device",
    "cache": "cache",
}
MAX_TEXT = 300


@dataclass(frozen=True)
class Silence:
    """How long a silent Platform run stays live (the settings of docs/settings.md)."""

    min_s: float
    first_epoch_s: float

    @classmethod
    def of_settings(cls, settings: Settings) -> "Silence":
        """Return the silences `platform_min_silence_s` and `platform_first_epoch_silence_s`."""
        return cls(settings.platform_min_silence_s, settings.platform_first_epoch_silence_s)

    def of(self, run: RunRow) -> float:
        """Return the silence `run` may keep before it is stale."""
        return platform_silence_s(
            run.longest_epoch_s, min_s=self.min_s, first_epoch_s=self.first_epoch_s
        )


@dataclass(frozen=True)
class Started:
    """What `training_started` answers: the model and run to report to, or a cancellation."""

    model_id: str
    run_id: int | None
    slug: str
    cancelled: bool = False


def fingerprint(user_id: str, event: PlatformEvent) -> str:
    """Return what identifies one `training_started` request, so that its retries are one run.

    A retry repeats the body exactly; another run's body differs at least in its system sample.
    """
    body = json.dumps(event.model_dump(), sort_keys=True, default=str)
    return hashlib.sha256(f"{user_id}\n{body}".encode()).hexdigest()


def _text(value: Any) -> str:
    return str(value).replace("\x00", "")[:MAX_TEXT]


def _config(args: dict[str, Any], epochs: int | None, device: str | None) -> dict[str, Any]:
    """Return the model's config from the run's train arguments; odd values are left out."""
    config: dict[str, Any] = {}
    for arg, key in CONFIG_ARGS.items():
        if arg in args and isinstance(args[arg], str | int | float | bool):
            try:
                config.update(modelspec.normalize_config({key: args[arg]}))
            except ValidationError:
                continue
    if epochs:
        config["epochs"] = epochs
    if device:
        config["device"] = _text(device)
    return config


def model_document(
    name: str, project: ProjectRow, workspace: str, data: TrainingStarted
) -> dict[str, Any]:
    """Return the document of a model that `training_started` creates.

    `workspace` is `owner/project` as the run named it (docs/protocol/platform.md §9.2).
    """
    args = {str(k): _text(v) for k, v in list(data.trainArgs.items())[:200]}
    doc: dict[str, Any] = {
        "meta": {"name": name},
        "projectId": project.id,
        "config": _config(args, data.epochs, data.device),
        "platform": {"project": workspace, "name": name},
    }
    model = args.get("model", "")
    if model.endswith((".yaml", ".yml")):
        doc["lineage"] = {"architecture": {"name": PurePosixPath(model).name}}
    elif model and model != "None":
        doc["lineage"] = {"parent": {"name": model}}
    if args.get("data") and args["data"] != "None":
        doc["dataset"] = {"name": args["data"]}
    if args.get("task"):
        doc["platform"]["task"] = args["task"]
    return doc


def _resume(session: Session, model_id: str, user_id: str) -> ModelRow:
    """Return the model a resumed run continues (404 when unknown: the client starts a new one)."""
    return owned.load(session, ModelRow, model_id, user_id, write=True)


def start_run(
    db: Database,
    user_id: str,
    user_name: str,
    event: PlatformEvent,
    data: TrainingStarted,
    silence: Silence,
) -> Started:
    """Begin a run: of a new model (project and name), or of a resumed one (modelId).

    A retried request answers the run the first attempt began; a resume of a cancelled model
    answers `cancelled`, so the client tracks the run as a new model.
    """
    now = utcnow()
    printed = fingerprint(user_id, event)
    with db.write() as session:
        retried = queries.find_retried_start(session, printed, now - RETRY_WINDOW)
        if retried is not None:
            row = session.get(ModelRow, retried.model_seq)
            if row is not None and row.deleted_at is None:
                return Started(row.id, retried.id, row.name)
        if event.modelId is not None:
            row = _resume(session, event.modelId, user_id)
            if row.status == "cancelled":
                return Started(row.id, None, row.name, cancelled=True)
        else:
            project, workspace = names.project_for_run(
                session, user_id, user_name, event.project or ""
            )
            name = slugs.free_model_name(
                session, project, slugify(event.name or "") or DEFAULT_RUN_NAME
            )
            row = model_queries.create_model(
                session, user_id, model_document(name, project, workspace, data)
            )
        row.status = "training"
        owned.touch(row)
        host = _text(data.environment.get("hostname") or "")
        run = queries.create_run(
            session,
            row,
            user_id=user_id,
            fingerprint=printed,
            agent_name=host or "ultralytics",
            interval_s=silence.first_epoch_s,
            now=now,
            planned_epochs=data.epochs or None,
            environment=data.environment,
            train_args={str(k): _text(v) for k, v in list(data.trainArgs.items())[:200]},
        )
        queries.note_event(session, row, run, now, silence.of(run))
        return Started(row.id, run.id, row.name)


def current_run(
    session: Session, row: ModelRow, user_id: str, now: datetime, silence: Silence
) -> RunRow:
    """Return the model's newest run; one is begun for a model that never had one."""
    run = queries.latest_run(session, row.seq)
    if run is not None:
        return run
    return queries.create_run(
        session,
        row,
        user_id=user_id,
        fingerprint="",
        agent_name="ultralytics",
        interval_s=silence.first_epoch_s,
        now=now,
    )


def _cancelling(row: ModelRow, run: RunRow) -> bool:
    return row.status == "cancelled" or (
        run.ended_at is None and run.cancel_requested_at is not None
    )


def record_epoch(
    db: Database, user_id: str, model_id: str, data: EpochEnd, silence: Silence
) -> bool:
    """Store one epoch (or the final validation as the run's result); tell whether to cancel.

    See docs/protocol/platform.md §9.3.
    """
    now = utcnow()
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        run = current_run(session, row, user_id, now, silence)
        if is_final_validation(data.epoch, data.metrics, run.planned_epochs):
            run.final_epoch, run.final_metrics = data.epoch, numbers_of(data.metrics)
            best = run.final_metrics.get(MAIN_METRIC)
            if isinstance(best, int | float):
                row.best_map = float(best)
        else:
            values = epoch_values(data.metrics, data.system, data.modelInfo)
            if values:
                model_queries.record_metrics(session, row, {data.epoch: values})
            queries.note_epoch(run, data.epoch, now)
        queries.note_event(session, row, run, now, silence.of(run))
        return _cancelling(row, run)


def note_event(db: Database, user_id: str, model_id: str, silence: Silence) -> bool:
    """Record that a model's run was heard from (an event with nothing to store); cancel?"""
    now = utcnow()
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        run = current_run(session, row, user_id, now, silence)
        queries.note_event(session, row, run, now, silence.of(run))
        return _cancelling(row, run)


def _run_named(session: Session, row: ModelRow, run_id: int | None, fallback: RunRow) -> RunRow:
    if run_id is None:
        return fallback
    return queries.find_run(session, row.seq, run_id) or fallback


def finish_run(
    db: Database,
    storage: Storage,
    user_id: str,
    model_id: str,
    data: TrainingComplete,
    silence: Silence,
) -> None:
    """End a run: keep its results, promote its final upload if no event did, settle the model.

    The model is `cancelled` when the hub asked the run to stop, `trained` otherwise; a repeated
    `training_complete` changes nothing more (docs/protocol/platform.md §9.3, §9.5).
    """
    now = utcnow()
    garbage: list[str] = []
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        run = _run_named(session, row, data.runId, current_run(session, row, user_id, now, silence))
        results = dict(data.results)
        run.results = results
        run.class_names = [_text(n) for n in (data.classNames or [])][:10_000]
        run.plots = data.plots or []
        path = results.get("modelPath")
        if isinstance(path, str):
            garbage = _promote_named(session, row, run, path, now)
        if run.ended_at is None:
            cancelled = run.cancel_requested_at is not None or row.status == "cancelled"
            queries.end_run(session, run, "cancelled" if cancelled else "completed", now)
            if queries.latest_run(session, row.seq) is run:
                row.status = "cancelled" if cancelled else "trained"
        metrics = results.get("metrics")
        best = metrics.get(MAIN_METRIC) if isinstance(metrics, dict) else None
        if isinstance(best, int | float) and not isinstance(best, bool):
            row.best_map = float(best)
        queries.note_event(session, row, run, now, silence.of(run))
        owned.touch(row)
    delete_garbage(storage, garbage)


def _promote_named(
    session: Session, row: ModelRow, run: RunRow, path: str, now: datetime
) -> list[str]:
    """Promote the upload a `modelPath` names if it holds bytes and nothing promoted it yet."""
    upload_id = staging.upload_id_of(path)
    upload = staging.find_upload(session, upload_id) if upload_id else None
    if upload is None or upload.model_seq != row.seq or upload.state != "received":
        return []
    return staging.promote(session, row, upload, epoch=run.last_epoch or 0, now=now)


def request_cancel(db: Database, model_id: str, user_id: str, silence: Silence) -> str:
    """Ask a model's running trainer to stop; return "requested" or "cancelled" (it was gone).

    The next `epoch_end` is answered with `cancelled: true` (docs/protocol/platform.md §9.5). A
    run that is already offline cannot hear it: the model is cancelled at once.
    """
    now = utcnow()
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        run = queries.latest_run(session, row.seq)
        if row.status != "training" or run is None or run.ended_at is not None:
            raise ConflictError(
                f"model {model_id!r} has no run in progress that reports through the Platform "
                "protocol (ultralytics 8.4); stop the trainer where it runs"
            )
        run.cancel_requested_at = run.cancel_requested_at or now
        owned.touch(row)
        changes.note_model(session, row)
        silent_s = (now - run.last_event_at).total_seconds()
        if silent_s > 2 * silence.of(run):
            queries.end_run(session, run, "cancelled", now)
            row.status = "cancelled"
            return "cancelled"
        return "requested"


@dataclass(frozen=True)
class RunView:
    """A run and its liveness now: online, stale or offline (ended runs are offline)."""

    run: RunRow
    liveness: str


def read_runs(db: Database, model_id: str, reader_id: str | None) -> list[RunView]:
    """Return a model's runs, oldest first, as `reader_id` may see them (404 otherwise)."""
    now = utcnow()
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, reader_id)
        found = queries.list_runs(session, row.seq)
        agents = queries.agents_by_id(session, [run.agent_id for run in found])
    return [
        RunView(run, state_of(agents[run.agent_id], now) if run.agent_id in agents else "offline")
        for run in found
    ]
