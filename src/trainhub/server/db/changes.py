"""Queries of the live changes (`live_changes`): note one, read those after an id, prune.

A change says which model changed, and whose, for the dashboard's open pages; never what changed.
`note` writes it in the caller's transaction and keeps it in the session's (or connection's)
`info`, so that `Database.write()` / `Database.begin()` hand it to their listeners once that
transaction committed (docs/dashboard.md, "Live updates").
"""

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, CursorResult, bindparam, delete, func, insert, select
from sqlalchemy.orm import Session

from trainhub.server.db.driver import Statement, connection
from trainhub.server.db.tables import LiveChangeRow, ModelRow, utcnow

PENDING = "trainhub.live_changes"  # key of the noted changes in Session.info / Connection.info
_INSERT = insert(LiveChangeRow).returning(LiveChangeRow.id)  # built once: compiled once
_INSERT_MANY = Statement(  # a batch of metrics writes notes one per model, every epoch
    insert(LiveChangeRow)
    .values(model_id=bindparam("model_id"), user_id=bindparam("user_id"), at=bindparam("at"))
    .returning(LiveChangeRow.id, sort_by_parameter_order=True)
)


@dataclass(frozen=True)
class Change:
    """One change: its id (orders every replica's changes), the model and its owner."""

    id: int
    model_id: str | None
    user_id: str | None

    def message(self) -> dict[str, int | str | None]:
        """Return the change as the JSON object published to the other replicas."""
        return {"id": self.id, "model": self.model_id, "user": self.user_id}

    @classmethod
    def from_message(cls, message: object) -> "Change | None":
        """Return the change a published message holds, None when it holds none."""
        if not isinstance(message, dict) or type(message.get("id")) is not int:
            return None
        model, user = message.get("model"), message.get("user")
        if not (model is None or isinstance(model, str)) or not (
            user is None or isinstance(user, str)
        ):
            return None
        return cls(message["id"], model, user)


def note(conn: Session | Connection, model_id: str | None, user_id: str | None) -> None:
    """Write that `model_id` (owned by `user_id`) changed, or that `user_id`'s sign-in did."""
    values = {"model_id": model_id, "user_id": user_id, "at": utcnow()}
    change_id = conn.execute(_INSERT, values).scalar_one()
    conn.info.setdefault(PENDING, []).append(Change(change_id, model_id, user_id))


def note_many(conn: Session | Connection, changed: list[tuple[str | None, str | None]]) -> None:
    """Write one change per (model id, owner id) pair (a batch of writes)."""
    if not changed:
        return
    at = utcnow()
    values = [{"model_id": model_id, "user_id": user_id, "at": at} for model_id, user_id in changed]
    ids = [row[0] for row in _INSERT_MANY.rows_many(connection(conn), values)]
    pending = conn.info.setdefault(PENDING, [])
    pending.extend(Change(id_, m, u) for id_, (m, u) in zip(ids, changed, strict=True))


def note_model(conn: Session | Connection, model: ModelRow) -> None:
    """Write that `model` changed."""
    note(conn, model.id, model.owner_id)


def take_noted(conn: Session | Connection) -> list[Change]:
    """Return the changes noted in `conn` and forget them."""
    noted: list[Change] = conn.info.pop(PENDING, [])
    return noted


def newest_id(conn: Session | Connection) -> int:
    """Return the id of the newest change, 0 when there is none."""
    return conn.scalar(select(func.max(LiveChangeRow.id))) or 0


def after(conn: Session | Connection, change_id: int, limit: int) -> list[Change]:
    """Return at most `limit` changes whose id is above `change_id`, oldest first."""
    rows = conn.execute(
        select(LiveChangeRow.id, LiveChangeRow.model_id, LiveChangeRow.user_id)
        .where(LiveChangeRow.id > change_id)
        .order_by(LiveChangeRow.id)
        .limit(limit)
    )
    return [Change(row.id, row.model_id, row.user_id) for row in rows]


def prune(conn: Session | Connection, before: datetime) -> int:
    """Delete the changes written before `before`; return how many."""
    pruned = conn.execute(delete(LiveChangeRow).where(LiveChangeRow.at < before))
    return cast(CursorResult[tuple[()]], pruned).rowcount
