"""Queries of console output: chunks stored once by chunk id, read back in chunk order.

Chunk ids start at the process's start time in milliseconds and count up, so they order the
chunks of one process and of the processes that resumed it (docs/protocol/platform.md §9.8).
"""

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from trainhub.server.db.tables import ConsoleChunkRow, utcnow


def add_chunk(
    session: Session,
    model_seq: int,
    chunk_id: int,
    *,
    run_id: int | None,
    content: str,
    line_count: int,
) -> bool:
    """Store a chunk unless one with its id is stored already (a retry); tell whether it was new.

    The caller holds the model's row lock, so two copies of one chunk cannot race here.
    """
    if session.get(ConsoleChunkRow, (model_seq, chunk_id)) is not None:
        return False
    session.add(
        ConsoleChunkRow(
            model_seq=model_seq,
            chunk_id=chunk_id,
            run_id=run_id,
            content=content,
            line_count=line_count,
            received_at=utcnow(),
        )
    )
    return True


def read_chunks(
    session: Session, model_seq: int, *, after: int | None = None, limit: int | None = None
) -> list[ConsoleChunkRow]:
    """Return a model's chunks in chunk order, those after chunk `after` only when given.

    With `limit` and no `after`, the newest `limit` chunks (still in order).
    """
    query = select(ConsoleChunkRow).where(ConsoleChunkRow.model_seq == model_seq)
    if after is not None:
        query = query.where(ConsoleChunkRow.chunk_id > after)
        if limit is not None:
            query = query.limit(limit)
        return list(session.scalars(query.order_by(ConsoleChunkRow.chunk_id)))
    if limit is None:
        return list(session.scalars(query.order_by(ConsoleChunkRow.chunk_id)))
    newest = list(session.scalars(query.order_by(ConsoleChunkRow.chunk_id.desc()).limit(limit)))
    return newest[::-1]


def console_state(session: Session, model_seq: int) -> dict[str, int | None]:
    """Return how many chunks a model has and its newest chunk id (what live updates watch)."""
    count, newest = session.execute(
        select(func.count(), func.max(ConsoleChunkRow.chunk_id)).where(
            ConsoleChunkRow.model_seq == model_seq
        )
    ).one()
    return {"chunks": int(count or 0), "newest": newest}
