"""Operations on models: create, read, list, change, delete, reset (docs/protocol/hub-v1.md §5)."""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement

from trainhub.server.db import changes, owned
from trainhub.server.db import models as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.models import ModelContext
from trainhub.server.db.tables import ModelRow
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.services.heartbeats import HeartbeatBoard
from trainhub.server.storage import Storage


def create_model(db: Database, user_id: str, document: dict[str, Any]) -> ModelRow:
    """Create a model from its owner's document; the references it names are checked."""
    with db.write() as session:
        row = queries.create_model(session, user_id, document)
        changes.note_model(session, row)
        return row


def check_writable(db: Database, model_id: str, user_id: str) -> None:
    """Raise (404, 403) unless `user_id` may change the model."""
    with db.read() as session:
        owned.load(session, ModelRow, model_id, user_id, write=True)


def read_model(db: Database, model_id: str, reader_id: str | None) -> ModelContext:
    """Return a model and what its record shows, as `reader_id` may see it (404 otherwise)."""
    with db.read() as session:
        row = owned.load(session, ModelRow, model_id, reader_id)
        return queries.load_context(session, row, reader_id)


@dataclass(frozen=True)
class ModelPage:
    """One page of models, each with what its record shows, and the cursor to the next."""

    contexts: list[ModelContext]
    total: int
    last_record_id: str | None


def list_models(
    db: Database,
    reader_id: str | None,
    *,
    limit: int,
    after: str | None,
    public: bool,
    project_id: str | None = None,
    where: ColumnElement[bool] | None = None,
) -> ModelPage:
    """Return a page of the reader's models (or of public ones), newest first.

    `project_id` keeps the models of one project; `where` is any further condition.
    """
    if project_id is not None:
        in_project = ModelRow.project_id == project_id
        where = in_project if where is None else in_project & where
    with db.read() as session:
        page = owned.list_page(
            session,
            ModelRow,
            reader_id,
            limit=limit,
            last_doc_id=after,
            public=public,
            extra=where,
        )
        contexts = queries.load_contexts(session, page.rows, reader_id)
    return ModelPage(contexts, page.total, page.last_record_id)


def update_model(db: Database, model_id: str, user_id: str, patch: dict[str, Any]) -> ModelContext:
    """Merge `patch` into the owner's document (objects merge, null removes a key)."""
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        queries.update_model(session, row, patch, user_id)
        changes.note_model(session, row)
        return queries.load_context(session, row, user_id)


def delete_model(
    db: Database,
    storage: Storage,
    heartbeats: HeartbeatBoard,
    model_id: str,
    user_id: str,
    *,
    hard: bool,
) -> None:
    """Delete a model: hidden with its data kept, or with `hard`, removed with its files."""
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        changes.note_model(session, row)
        garbage = queries.delete_model(session, row, hard=hard)
    heartbeats.forget(model_id)
    delete_garbage(storage, garbage)


def reset_model(
    db: Database, storage: Storage, heartbeats: HeartbeatBoard, model_id: str, user_id: str
) -> None:
    """Return a model to `new`: its metrics, checkpoints, weights and agents are removed.

    This process forgets the model's agents at once (another process within a second), so a
    trainer that beats on is a new agent.
    """
    with db.write() as session:
        row = owned.load(session, ModelRow, model_id, user_id, write=True)
        garbage = queries.reset_model(session, row)
        changes.note_model(session, row)
    heartbeats.forget(model_id)
    delete_garbage(storage, garbage)
