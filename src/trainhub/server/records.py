"""Turn database rows into the records the API returns (docs/protocol/hub-v1.md §6).

The model record holds the owner's document plus what the server derives: status, weight flags
and URLs, cfg, train_args, the six flat config fields, liveness. Pages use the same functions.
"""

from typing import Any

from trainhub.protocol.exports import ExportStatus, find_format
from trainhub.protocol.ids import hub_spelling, platform_spelling
from trainhub.server import modelspec
from trainhub.server.db.models import ModelContext
from trainhub.server.db.tables import (
    DatasetRow,
    ExportRow,
    ProjectRow,
    RunRow,
    UserRow,
    iso,
    utcnow,
)
from trainhub.server.links import Links, export_file_name
from trainhub.server.liveness import is_online


def _agents(context: ModelContext) -> list[dict[str, Any]]:
    now = utcnow()
    return [
        {
            "id": a.id,
            "name": a.name,
            "intervalSeconds": a.interval_s,
            "state": a.state,
            "firstSeen": iso(a.first_seen),
            "lastSeen": iso(a.last_seen),
            "online": is_online(a, now),
        }
        for a in context.agents[:10]
    ]


def _data_url(context: ModelContext, links: Links) -> str | None:
    if context.dataset is not None:
        return links.dataset(context.dataset)
    dataset = context.row.doc.get("dataset")
    name = dataset.get("name") if isinstance(dataset, dict) else None
    return str(name) if name else None


def _weights_url(context: ModelContext, links: Links) -> str | None:
    row = context.row
    if "best" in context.weights:
        return links.weights(row.id, context.weights["best"])
    if context.parent_best is not None:
        return links.weights(*context.parent_best)
    name = modelspec.parent(row.doc).get("name")
    return str(name) if name else None


def model_record(context: ModelContext, links: Links) -> dict[str, Any]:
    """Return the JSON record of a model."""
    row, doc = context.row, context.row.doc
    raw_config = doc.get("config")
    config: dict[str, Any] = raw_config if isinstance(raw_config, dict) else {}
    data = _data_url(context, links)
    pretrained = bool(modelspec.parent(doc))
    dataset = dict(doc.get("dataset") or {})
    if context.dataset is not None:
        dataset.update(id=context.dataset.id, name=context.dataset.name, url=data)
    project = {"id": context.project.id, "name": context.project.name} if context.project else {}
    agents = _agents(context)
    return {
        **doc,
        "id": row.id,
        "meta": {**(doc.get("meta") or {}), "name": row.name},
        "public": row.public,
        "status": row.status,
        "has_last_weights": "last" in context.weights,
        "has_best_weights": "best" in context.weights,
        "is_pretrained": pretrained,
        "is_custom": not pretrained,
        "cfg": modelspec.cfg_name(doc),
        "data": data,
        "weights": _weights_url(context, links),
        "resume": links.weights(row.id, context.weights["last"])
        if "last" in context.weights
        else None,
        "train_args": modelspec.train_args(config, data),
        "config": config,
        "dataset": dataset,
        "datasetId": context.dataset.id if context.dataset else None,
        "project": project,
        "projectId": context.project.id if context.project else None,
        **modelspec.flat_config(config),
        "epoch": row.last_epoch,
        "map": row.best_map,
        "agents": agents,
        "online": any(a["online"] for a in agents),
        "lastHeartbeat": iso(row.last_heartbeat_at),
        "url": links.model_page(row.id),
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def dataset_record(row: DatasetRow, links: Links) -> dict[str, Any]:
    """Return the JSON record of a dataset."""
    return {
        **row.doc,
        "id": row.id,
        "meta": {**(row.doc.get("meta") or {}), "name": row.name},
        "public": row.public,
        "filename": row.filename,
        "url": links.dataset(row),
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "layout": row.layout,
        "status": "ready" if row.sha256 else "new",
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def project_record(row: ProjectRow, links: Links) -> dict[str, Any]:
    """Return the JSON record of a project."""
    return {
        **row.doc,
        "id": row.id,
        "meta": {**(row.doc.get("meta") or {}), "name": row.name},
        "public": row.public,
        "cover": links.cover(row),
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def user_record(row: UserRow, api_key: str | None = None) -> dict[str, Any]:
    """Return the JSON record of a user (with its API key only when just created)."""
    record: dict[str, Any] = {
        "id": row.id,
        "meta": {"name": row.name},
        "name": row.name,
        "is_admin": row.is_admin,
        "createdAt": iso(row.created_at),
    }
    if api_key is not None:
        record["apiKey"] = hub_spelling(api_key)
        record["platformApiKey"] = platform_spelling(api_key)
    return record


def export_message(row: ExportRow, workers_alive: bool = True) -> str:
    """Return what an export's state means for people (and "Export ready!" for the clients)."""
    status = ExportStatus(row.status)
    title = (found.title if (found := find_format(row.format)) else row.format) + " export"
    if status is ExportStatus.DONE:
        return "Export ready!"  # what hub-sdk's tests wait for: docs/protocol/hub-v1.md §5.13
    if status is ExportStatus.FAILED:
        return f"{title} failed: {row.error or 'no reason recorded'}"
    if status is ExportStatus.RUNNING:
        return f"{title} in progress (attempt {row.attempts})"
    if not workers_alive:
        return (
            f"{title} queued, but no worker is running: start one with `trainhub worker "
            "--data-dir DIR` (docs/server.md, Workers)"
        )
    return f"{title} queued"


def export_record(
    row: ExportRow, model_id: str, links: Links, workers_alive: bool = True
) -> dict[str, Any]:
    """Return the JSON record of an export job (docs/http-api.md, Exports)."""
    end = row.finished_at or (utcnow() if row.status == ExportStatus.RUNNING else None)
    duration = (end - row.started_at).total_seconds() if end and row.started_at else None
    done = row.status == ExportStatus.DONE
    return {
        "id": row.id,
        "modelId": model_id,
        "format": row.format,
        "status": row.status,
        "message": export_message(row, workers_alive),
        "error": row.error,
        "url": links.export(model_id, row) if done else None,
        "fileName": export_file_name(model_id, row) if done else None,
        "sha256": row.sha256,
        "size_bytes": row.size_bytes,
        "weightsSha256": row.weights_sha256,
        "attempts": row.attempts,
        "createdAt": iso(row.created_at),
        "startedAt": iso(row.started_at),
        "finishedAt": iso(row.finished_at),
        "durationSeconds": None if duration is None else round(duration, 3),
    }


def run_record(run: RunRow, liveness: str) -> dict[str, Any]:
    """Return the JSON record of a Platform run (docs/protocol/platform.md §9.8)."""
    return {
        "id": run.id,
        "state": run.state,
        "liveness": liveness,
        "startedAt": iso(run.started_at),
        "lastEventAt": iso(run.last_event_at),
        "endedAt": iso(run.ended_at),
        "cancelRequestedAt": iso(run.cancel_requested_at),
        "plannedEpochs": run.planned_epochs,
        "lastEpoch": run.last_epoch,
        "longestEpochSeconds": run.longest_epoch_s,
        "environment": run.environment,
        "trainArgs": run.train_args,
        "finalEpoch": run.final_epoch,
        "finalMetrics": run.final_metrics,
        "results": run.results,
        "classNames": run.class_names,
        "plots": run.plots,
    }
