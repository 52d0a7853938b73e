"""Queries shared by models, datasets and projects: load with permission checks, cursor lists.

Reads are allowed to the owner, and to everyone when the object is public; writes only to the
owner. Another user's private object answers 404, exactly like a missing one (no enumeration).
"""

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import is_id
from trainhub.server.db.tables import DatasetRow, ModelRow, OwnedMixin, ProjectRow
from trainhub.server.errors import ForbiddenError, NotAuthenticatedError, NotFoundError

Row = TypeVar("Row", ModelRow, DatasetRow, ProjectRow)
MAX_PAGE = 100

KIND = {ModelRow: "model", DatasetRow: "dataset", ProjectRow: "project"}


def load(
    session: Session,
    row_type: type[Row],
    object_id: str,
    user_id: str | None,
    *,
    write: bool = False,
) -> Row:
    """Return the live object `object_id` if the caller may read it (or write it, with `write`)."""
    kind = KIND[row_type]
    if not is_id(object_id):
        raise NotFoundError(kind, object_id)
    query = select(row_type).where(row_type.id == object_id, row_type.deleted_at.is_(None))
    if write:  # PostgreSQL: concurrent writes to one object queue up (SQLite: BEGIN IMMEDIATE)
        query = query.with_for_update()
    row = session.scalars(query).first()
    if row is None or (row.owner_id != user_id and not row.public):
        raise NotFoundError(kind, object_id)
    if write and row.owner_id != user_id:
        if user_id is None:
            raise NotAuthenticatedError(f"changing a {kind} needs an API key")
        raise ForbiddenError(
            f"{kind} {object_id!r} is public but belongs to another user; it is read-only for you"
        )
    return row


def readable_by(row_type: type[OwnedMixin], user_id: str | None) -> ColumnElement[bool]:
    """Return SQL that is true for live objects `user_id` may read now (None: anonymous)."""
    visible: ColumnElement[bool] = row_type.public.is_(True)
    if user_id is not None:
        visible = visible | (row_type.owner_id == user_id)
    return row_type.deleted_at.is_(None) & visible


@dataclass(frozen=True)
class PageOf:
    """One page of a list and the cursor to the next."""

    rows: list[Any]
    total: int
    last_record_id: str | None


def _visible(row_type: type[Row], user_id: str | None, public: bool) -> Select[Row]:
    query = select(row_type).where(row_type.deleted_at.is_(None))
    if public:
        return query.where(row_type.public.is_(True))
    return query.where(row_type.owner_id == user_id)


def list_page(
    session: Session,
    row_type: type[Row],
    user_id: str | None,
    *,
    limit: int,
    last_doc_id: str | None,
    public: bool,
    extra: Any = None,
) -> PageOf:
    """Return a page, newest first, after the object `last_doc_id`.

    See docs/protocol/hub-v1.md §5.7.
    """
    if not public and user_id is None:
        raise NotAuthenticatedError("listing your objects needs an API key; or pass public=True")
    limit = max(1, min(limit, MAX_PAGE))
    query = _visible(row_type, user_id, public)
    if extra is not None:
        query = query.where(extra)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    if last_doc_id:
        # only a row the caller may list is a cursor: another user's private id answers 404,
        # like an unknown one, so cursors cannot tell whether an object exists
        mine = row_type.public.is_(True) if public else row_type.owner_id == user_id
        cursor = session.scalar(select(row_type.seq).where(row_type.id == last_doc_id, mine))
        if cursor is None:
            raise NotFoundError(f"{KIND[row_type]} cursor", last_doc_id)
        query = query.where(row_type.seq < cursor)
    rows = list(session.scalars(query.order_by(row_type.seq.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return PageOf(rows, total, rows[-1].id if more and rows else None)


def touch(row: OwnedMixin) -> None:
    """Mark `row` as changed now."""
    from trainhub.server.db.tables import utcnow

    row.updated_at = utcnow()
