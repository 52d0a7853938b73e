"""Operations shared by datasets and projects: create, read, list, change, delete.

Both follow the same hub-sdk CRUD shape (docs/protocol/hub-v1.md §5.16, §5.18); their own
operations (a dataset's archive, a project's cover) are in datasets.py and projects.py.
"""

from typing import Any, TypeVar

from trainhub.server.db import owned, resources
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import DatasetRow, ProjectRow
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.storage import Storage

R = TypeVar("R", DatasetRow, ProjectRow)


def create(db: Database, row_type: type[R], user_id: str, document: dict[str, Any]) -> R:
    """Create a dataset or project from its owner's document."""
    with db.write() as session:
        return resources.create(session, row_type, user_id, document)


def read(db: Database, row_type: type[R], object_id: str, reader_id: str | None) -> R:
    """Return a dataset or project the reader may read (404 otherwise)."""
    with db.read() as session:
        return owned.load(session, row_type, object_id, reader_id)


def list_page(
    db: Database,
    row_type: type[R],
    reader_id: str | None,
    *,
    limit: int,
    after: str | None,
    public: bool,
) -> owned.PageOf:
    """Return a page of the reader's datasets or projects (or public ones), newest first."""
    with db.read() as session:
        return owned.list_page(
            session, row_type, reader_id, limit=limit, last_doc_id=after, public=public
        )


def update(
    db: Database, row_type: type[R], object_id: str, user_id: str, patch: dict[str, Any]
) -> R:
    """Merge `patch` into the owner's document."""
    with db.write() as session:
        row = owned.load(session, row_type, object_id, user_id, write=True)
        resources.change(row, patch)
        return row


def delete(
    db: Database, storage: Storage, row_type: type[R], object_id: str, user_id: str, *, hard: bool
) -> None:
    """Delete a dataset or project: hidden, or with `hard` removed with its file."""
    with db.write() as session:
        row = owned.load(session, row_type, object_id, user_id, write=True)
        garbage = resources.remove(session, row, hard=hard)
    delete_garbage(storage, garbage)
