"""Projects and models named the Platform way: `owner/project` and a model slug.

A run's `project=OWNER/NAME` lands in OWNER's project NAME: the caller's own is created on first
use, another owner's needs the right to add models to it (docs/protocol/platform.md §9.2).
`ul://OWNER/PROJECT/MODEL` finds a model the same way, and `ul://OWNER/datasets/SLUG` a dataset,
as their reader may see them (docs/protocol/platform.md §9.10).
"""

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from trainhub.protocol.platform import slugify, split_project
from trainhub.server.db import models as model_queries
from trainhub.server.db import owned, slugs
from trainhub.server.db import users as user_queries
from trainhub.server.db.engine import Database
from trainhub.server.db.models import ModelContext
from trainhub.server.db.resources import create as create_resource
from trainhub.server.db.tables import DatasetRow, ModelRow, ProjectRow, UserRow
from trainhub.server.errors import ForbiddenError, NotFoundError, ValidationError

T = TypeVar("T")


def _owner(session: Session, owner_name: str) -> UserRow:
    # a name no user can have (NUL, which PostgreSQL text cannot even compare) matches nobody
    owner = None if "\x00" in owner_name else user_queries.find_user(session, owner_name)
    if owner is None:
        raise NotFoundError("user", owner_name)
    return owner


def project_for_run(
    session: Session, user_id: str, user_name: str, project: str
) -> tuple[ProjectRow, str]:
    """Return the project a run's `project` names, and `owner/slug` as shown.

    The caller's project is created on first use; another owner's must exist and be writable
    by the caller (403 otherwise); an unknown owner is 404.
    """
    owner_name, slug = split_project(project)
    if not slug:
        raise ValidationError(
            f"project {project[:80]!r} names no project; pass project=OWNER/NAME to yolo train"
        )
    owner_id = _owner(session, owner_name).id if owner_name else user_id
    found = slugs.find_project(session, owner_id, slug, lock=True)
    if owner_id == user_id:
        if found is None:
            found = create_resource(session, ProjectRow, user_id, {"meta": {"name": slug}})
        return found, f"{owner_name or user_name}/{slug}"
    refusal = (
        f"project {owner_name}/{slug} belongs to {owner_name}, who has not let you add models "
        f"to it; train into your own workspace with project={user_name}/{slug}"
    )
    if found is None:
        raise ForbiddenError(refusal)
    try:
        owned.load(session, ProjectRow, found.id, user_id, write=True)
    except NotFoundError as exc:
        raise ForbiddenError(refusal) from exc
    return found, f"{owner_name}/{slug}"


def _by_slug_or_id(
    find: Callable[[Session, Any, str], T | None], session: Session, scope: Any, text: str
) -> T | None:
    """Look `text` up as given (an id, or a slug) and slugified, as ultralytics would send it."""
    found = find(session, scope, text) if text and "\x00" not in text else None
    slug = slugify(text)
    if found is None and slug and slug != text:
        found = find(session, scope, slug)
    return found


def find_named_model(
    session: Session, reader_id: str | None, reader_name: str, project: str, name: str
) -> ModelRow:
    """Return the model `project` (`owner/slug`, or the reader's `slug`) and `name` name.

    404 unless the reader may read it (their own, or a public one).
    """
    owner_name, slash, rest = project.partition("/")
    if not slash:
        owner_name, rest = "", project
    owner = _owner(session, owner_name or reader_name)
    found = _by_slug_or_id(slugs.find_project, session, owner.id, rest)
    model = _by_slug_or_id(slugs.find_model, session, found, name) if found else None
    if model is None:
        raise NotFoundError("model", f"{owner.name}/{rest}/{name}")
    return owned.load(session, ModelRow, model.id, reader_id)


def read_named_model(
    db: Database, reader_id: str, reader_name: str, owner: str, project: str, model: str
) -> ModelContext:
    """Return the model `ul://owner/project/model` names, with its weights (404 if unreadable)."""
    with db.read() as session:
        row = find_named_model(session, reader_id, reader_name, f"{owner}/{project}", model)
        return model_queries.load_context(session, row, reader_id)


def find_named_dataset(session: Session, reader_id: str, owner: str, slug: str) -> DatasetRow:
    """Return the dataset `ul://owner/datasets/slug` names, if `reader_id` may read it (404)."""
    found = _by_slug_or_id(slugs.find_dataset, session, _owner(session, owner).id, slug)
    if found is None:
        raise NotFoundError("dataset", f"{owner}/datasets/{slug}")
    return owned.load(session, DatasetRow, found.id, reader_id)
