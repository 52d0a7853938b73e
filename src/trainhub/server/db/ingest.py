"""Core SQL for the hot writes of metrics: many uploads of many models in one transaction.

Used by services/ingest.py, which groups concurrent uploads into one commit. The statements are
built once, so each execution only binds its parameters (SQLAlchemy reuses their compiled form),
and on SQLite they run on the driver's connection (db/driver.py). A batch costs one SELECT of its
models (one per model on SQLite), one INSERT of its epochs (RETURNING the rows it added), an
UPDATE per epoch that was stored before (a retry or a re-sent epoch; rare) and one UPDATE per
model (its status, last epoch and best main metric).
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Float, bindparam, case, cast, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from trainhub.protocol.metrics import EpochMetrics
from trainhub.server.db.driver import Statement
from trainhub.server.db.metrics import decode_values, encode_values
from trainhub.server.db.tables import MetricRow, ModelRow

STARTABLE = ("new", "failed")  # a model in these states begins training with its first epoch

_ACCESS = select(
    ModelRow.id,
    ModelRow.seq,
    ModelRow.owner_id,
    ModelRow.public,
    ModelRow.deleted_at,
    ModelRow.status,
)
_MODELS = _ACCESS.where(ModelRow.id.in_(bindparam("ids", expanding=True)))
_MODELS_LOCKED = _MODELS.order_by(ModelRow.seq).with_for_update()  # built once: compiled once
_MODEL = Statement(_ACCESS.where(ModelRow.id == bindparam("id")))
_INSERTS = {
    name: Statement(
        dialect.insert(MetricRow)
        .values(
            model_seq=bindparam("model_seq"),
            epoch=bindparam("epoch"),
            values=bindparam("values"),
            updated_at=bindparam("updated_at"),
        )
        .on_conflict_do_nothing()
        .returning(MetricRow.model_seq, MetricRow.epoch, sort_by_parameter_order=True)
    )
    for name, dialect in (("sqlite", sqlite), ("postgresql", postgresql))
}
_STORED = select(MetricRow.values).where(
    MetricRow.model_seq == bindparam("seq"), MetricRow.epoch == bindparam("ep")
)
_MERGE = (
    update(MetricRow)
    .where(MetricRow.model_seq == bindparam("row_seq"), MetricRow.epoch == bindparam("ep"))
    .values(values=bindparam("merged"), updated_at=bindparam("now"))
)
_BEST = cast(bindparam("best"), Float)  # a cast: PostgreSQL cannot type `$1 IS NOT NULL`
_TRAINING = Statement(
    update(ModelRow)
    .where(ModelRow.seq == bindparam("row_seq"))
    .values(
        # status = 'new' OR status = 'failed': an IN (...) list would not run as executemany
        status=case(
            (or_(*(ModelRow.status == state for state in STARTABLE)), "training"),
            else_=ModelRow.status,
        ),
        last_epoch=case(
            (
                ModelRow.last_epoch.is_(None) | (ModelRow.last_epoch < bindparam("newest")),
                bindparam("newest"),
            ),
            else_=ModelRow.last_epoch,
        ),
        best_metric=case(
            (
                _BEST.is_not(None)
                & (ModelRow.best_metric.is_(None) | (ModelRow.best_metric < _BEST)),
                _BEST,
            ),
            else_=ModelRow.best_metric,
        ),
        updated_at=bindparam("now"),
    )
)


@dataclass(frozen=True)
class ModelAccess:
    """What a write needs to know of a model: its row number, owner, and visibility."""

    seq: int
    owner_id: str
    public: bool
    deleted: bool
    status: str


def models_by_id(
    conn: Connection, model_ids: Iterable[str], *, lock: bool = False
) -> dict[str, ModelAccess]:
    """Return the models named by `model_ids` (missing ids are absent).

    `lock` locks their rows until the transaction ends (PostgreSQL, in `seq` order; SQLite's
    BEGIN IMMEDIATE already holds the whole database), as every writer of metrics does.
    """
    ids = sorted(set(model_ids))
    if conn.dialect.name == "sqlite":  # one key lookup each: no IN list to compile per count
        rows = [row for model_id in ids for row in _MODEL.rows(conn, {"id": model_id})]
    else:
        rows = [
            tuple(row) for row in conn.execute(_MODELS_LOCKED if lock else _MODELS, {"ids": ids})
        ]
    return {
        model_id: ModelAccess(seq, owner_id, bool(public), deleted_at is not None, status)
        for model_id, seq, owner_id, public, deleted_at, status in rows
    }


def upsert_epochs(
    conn: Connection, epochs: dict[tuple[int, int], EpochMetrics], now: datetime
) -> None:
    """Store {(model seq, epoch): values}; an epoch already stored merges, newer values winning."""
    if not epochs:
        return
    rows: list[dict[str, Any]] = [
        {"model_seq": seq, "epoch": epoch, "values": encode_values(values), "updated_at": now}
        for (seq, epoch), values in epochs.items()
    ]
    added = _INSERTS[conn.dialect.name].rows_many(conn, rows)
    stored_before = set(epochs) - {(seq, epoch) for seq, epoch in added}
    for seq, epoch in stored_before:
        text = conn.execute(_STORED, {"seq": seq, "ep": epoch}).scalar_one()
        merged = encode_values({**decode_values(text), **epochs[(seq, epoch)]})
        conn.execute(_MERGE, {"row_seq": seq, "ep": epoch, "merged": merged, "now": now})


def note_training(
    conn: Connection, newest_epoch: dict[int, int], best: dict[int, float], now: datetime
) -> None:
    """Mark models that got epochs as training (from new or failed), raise their last epoch, and
    raise their best main metric to `best[seq]` (models absent from `best` keep theirs)."""
    params = [
        {"row_seq": seq, "newest": epoch, "best": best.get(seq), "now": now}
        for seq, epoch in newest_epoch.items()
    ]
    _TRAINING.run_many(conn, params)
