"""Projects and models named the Platform way: `owner/project` and a model slug.

A run's `project=OWNER/NAME` lands in OWNER's project NAME: the caller's own is created on first
use, another owner's needs the right to add models to it (docs/protocol/platform.md §9.2).
`ul://OWNER/PROJECT/MODEL` finds a model the same way, as its reader may see it.
"""

from sqlalchemy.orm import Session

from trainhub.protocol.platform import slugify, split_project
from trainhub.server.db import owned, slugs
from trainhub.server.db import users as user_queries
from trainhub.server.db.resources import create as create_resource
from trainhub.server.db.tables import ModelRow, ProjectRow, UserRow
from trainhub.server.errors import ForbiddenError, NotFoundError, ValidationError


def _owner(session: Session, owner_name: str) -> UserRow:
    owner = user_queries.find_user(session, owner_name)
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


def find_named_model(
    session: Session, reader_id: str | None, reader_name: str, project: str, name: str
) -> ModelRow:
    """Return the model `project` (`owner/slug`, or the reader's `slug`) and `name` name.

    404 unless the reader may read it (their own, or a public one).
    """
    owner_name, slug = split_project(project)
    owner = _owner(session, owner_name or reader_name)
    found = slugs.find_project(session, owner.id, slug) if slug else None
    model = slugs.find_model(session, found, slugify(name) or name) if found else None
    if model is None:
        raise NotFoundError("model", f"{owner.name}/{slug}/{name}")
    return owned.load(session, ModelRow, model.id, reader_id)
