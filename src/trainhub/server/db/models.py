"""Queries of models: create, change, delete, reset, metrics, weights and heartbeats.

Functions take a session inside the caller's transaction and return the storage keys that became
garbage; the caller deletes those blobs only after the transaction committed.
"""

from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import create_id, is_id
from trainhub.protocol.metrics import EpochMetrics
from trainhub.protocol.weights import WeightKind, WeightUpload
from trainhub.server import modelspec
from trainhub.server.db import exports, metrics, owned
from trainhub.server.db.tables import (
    AgentRow,
    ConsoleChunkRow,
    DatasetRow,
    MetricRow,
    ModelRow,
    ProjectRow,
    RunRow,
    StagedUploadRow,
    WeightRow,
    utcnow,
)
from trainhub.server.documents import check_document, deep_merge, display_name
from trainhub.server.errors import ValidationError

REFERENCE_KEYS = ("datasetId", "projectId")


def _reference(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not is_id(value):
        raise ValidationError(f"{key} must be a 20-character id, got {str(value)[:40]!r}")
    return value


def _check_references(session: Session, written: dict[str, Any], user_id: str) -> None:
    """Check the lineage and the parent, dataset and project that `written` names."""
    modelspec.check_lineage(written)
    parent_id = modelspec.parent(written).get("id")
    if parent_id is not None:
        if not isinstance(parent_id, str):
            raise ValidationError("lineage.parent.id must be a model id")
        owned.load(session, ModelRow, parent_id, user_id)
    dataset_id, project_id = _reference(written, "datasetId"), _reference(written, "projectId")
    if dataset_id is not None:
        owned.load(session, DatasetRow, dataset_id, user_id)
    if project_id is not None:
        owned.load(session, ProjectRow, project_id, user_id, write=True)


def _apply_document(row: ModelRow, doc: dict[str, Any]) -> None:
    """Set the row's columns from its merged document."""
    if isinstance(doc.get("config"), dict):
        doc["config"] = modelspec.normalize_config(doc["config"])
    row.dataset_id = _reference(doc, "datasetId")
    row.project_id = _reference(doc, "projectId")
    row.public = bool(doc.pop("public", row.public))
    # PostgreSQL text cannot hold NUL; the name is display text, so drop it there
    row.name = display_name(doc, row.name or "model").replace("\x00", "")
    row.doc = {k: v for k, v in doc.items() if k not in REFERENCE_KEYS}
    owned.touch(row)


def create_model(session: Session, user_id: str, body: dict[str, Any]) -> ModelRow:
    """Create a model from an ultralytics or hub-sdk payload (docs/protocol/hub-v1.md §5.4)."""
    doc = dict(check_document(body))
    _check_references(session, doc, user_id)
    row = ModelRow(id=create_id(), owner_id=user_id, status="new")
    _apply_document(row, doc)
    session.add(row)
    session.flush()
    return row


def update_model(session: Session, row: ModelRow, patch: dict[str, Any], user_id: str) -> None:
    """Deep-merge `patch` into the model's document; only references it names are checked."""
    check_document(patch)
    _check_references(session, patch, user_id)
    current = {
        **row.doc,
        "public": row.public,
        "datasetId": row.dataset_id,
        "projectId": row.project_id,
    }
    _apply_document(row, deep_merge(current, patch))


def _clear(session: Session, row: ModelRow) -> list[str]:
    keys = list(session.scalars(select(WeightRow.blob_key).where(WeightRow.model_seq == row.seq)))
    keys += exports.delete_exports(session, row.seq)
    staged = session.scalars(
        select(StagedUploadRow.blob_key).where(
            StagedUploadRow.model_seq == row.seq, StagedUploadRow.state == "received"
        )
    )
    keys += [key for key in staged if key]
    tables = (MetricRow, WeightRow, AgentRow, RunRow, ConsoleChunkRow, StagedUploadRow)
    for table in tables:
        session.execute(delete(table).where(table.model_seq == row.seq))
    return keys


def delete_model(session: Session, row: ModelRow, *, hard: bool) -> list[str]:
    """Delete a model: soft keeps its data (hidden), hard removes it and returns its blob keys."""
    if not hard:
        row.deleted_at = utcnow()
        return []
    keys = _clear(session, row)
    session.delete(row)
    return keys


def reset_model(session: Session, row: ModelRow) -> list[str]:
    """Return a model to `new`: metrics, checkpoints, weights and agents cleared.

    See docs/protocol/hub-v1.md §5.14.
    """
    keys = _clear(session, row)
    row.status, row.best_map, row.last_epoch, row.last_heartbeat_at = "new", None, None, None
    row.best_metric = None
    owned.touch(row)
    return keys


def _start_training(row: ModelRow, epoch: int | None = None) -> None:
    if row.status in ("new", "failed"):
        row.status = "training"
    if epoch is not None and (row.last_epoch is None or epoch > row.last_epoch):
        row.last_epoch = epoch
    owned.touch(row)


def record_metrics(session: Session, row: ModelRow, epochs: dict[int, EpochMetrics]) -> None:
    """Merge each epoch's metrics into what is stored (newer values win); training has begun."""
    metrics.upsert_metrics(session, row.seq, epochs)
    best = metrics.main_metric(epochs.values())
    if best is not None and (row.best_metric is None or best > row.best_metric):
        row.best_metric = best
    _start_training(row, max(epochs))


def record_weights(
    session: Session,
    row: ModelRow,
    upload: WeightUpload,
    *,
    key: str,
    sha256: str,
    size: int,
    settle: bool = True,
) -> list[str]:
    """Store a checkpoint or the final weights; return the keys of the blobs they replace.

    New final weights also drop the exports of the weights they replace (exports are made from
    the final weights, and a file exported from weights that are gone must not be served).
    Final weights settle the model as trained, unless `settle` is False: a Platform run uploads
    its best.pt before it ends, and its end decides the status (docs/protocol/platform.md §9.7).
    """
    kind = upload.kind
    old = session.get(WeightRow, (row.seq, kind))
    garbage = [old.blob_key] if old is not None and old.blob_key != key else []
    if kind is WeightKind.FINAL:
        garbage += exports.delete_exports(session, row.seq, keep_weights=sha256)
    if old is not None:
        session.delete(old)
        session.flush()
    session.add(
        WeightRow(
            model_seq=row.seq,
            kind=kind,
            epoch=upload.epoch,
            is_best=upload.is_best,
            map=upload.map_value,
            blob_key=key,
            sha256=sha256,
            size_bytes=size,
        )
    )
    _start_training(row, upload.epoch)
    if kind is WeightKind.FINAL and settle:
        row.status = "trained"
        row.best_map = upload.map_value
        for agent in session.scalars(
            select(AgentRow).where(AgentRow.model_seq == row.seq, AgentRow.state == "running")
        ):
            agent.state = "finished"
    return garbage


@dataclass
class ModelContext:
    """A model row and the rows its record draws on, as one reader may see them."""

    row: ModelRow
    weights: dict[str, WeightRow] = field(default_factory=dict)
    dataset: DatasetRow | None = None
    project: ProjectRow | None = None
    parent_best: tuple[str, WeightRow] | None = None
    agents: list[AgentRow] = field(default_factory=list)


def load_context(session: Session, row: ModelRow, reader_id: str | None) -> ModelContext:
    """Fetch the weights, agents, and the dataset, project and parent weights of a model.

    A referenced object is included only while `reader_id` (None: anonymous) may read it: a
    model may name another user's dataset, project or parent that was public once and is
    private or deleted now, and a public model must not hand out its owner's private objects.
    """
    return load_contexts(session, [row], reader_id)[0]


def load_contexts(
    session: Session, rows: list[ModelRow], reader_id: str | None
) -> list[ModelContext]:
    """Return the contexts of `rows` (as `load_context` would), in order, in five queries."""
    contexts = [ModelContext(row) for row in rows]
    if not rows:
        return contexts
    by_seq = {context.row.seq: context for context in contexts}
    for weight in session.scalars(select(WeightRow).where(WeightRow.model_seq.in_(by_seq))):
        by_seq[weight.model_seq].weights[weight.kind] = weight
    agents = select(AgentRow).where(AgentRow.model_seq.in_(by_seq))
    for agent in session.scalars(agents.order_by(AgentRow.last_seen.desc())):
        by_seq[agent.model_seq].agents.append(agent)
    datasets = _readable(session, DatasetRow, {r.dataset_id for r in rows}, reader_id)
    projects = _readable(session, ProjectRow, {r.project_id for r in rows}, reader_id)
    parent_ids = {c.row.seq: modelspec.parent(c.row.doc).get("id") for c in contexts}
    wanted = {p for p in parent_ids.values() if isinstance(p, str) and is_id(p)}
    parents: dict[str, WeightRow] = {}
    if wanted:
        found = session.execute(
            select(ModelRow.id, WeightRow)
            .join(WeightRow, WeightRow.model_seq == ModelRow.seq)
            .where(
                ModelRow.id.in_(wanted),
                WeightRow.kind == WeightKind.FINAL,
                owned.readable_by(ModelRow, reader_id),
            )
        )
        parents = {str(model_id): weight for model_id, weight in found}
    for context in contexts:
        row = context.row
        context.dataset = datasets.get(row.dataset_id or "")
        context.project = projects.get(row.project_id or "")
        parent_id = parent_ids[row.seq]
        if isinstance(parent_id, str) and parent_id in parents:
            context.parent_best = (parent_id, parents[parent_id])
    return contexts


R = TypeVar("R", DatasetRow, ProjectRow)


def _readable(
    session: Session, table: type[R], ids: set[str | None], reader_id: str | None
) -> dict[str, R]:
    """Return the rows of `table` among `ids` that `reader_id` may read, by id."""
    wanted = [i for i in ids if i]
    if not wanted:
        return {}
    query = select(table).where(table.id.in_(wanted), owned.readable_by(table, reader_id))
    return {row.id: row for row in session.scalars(query)}
