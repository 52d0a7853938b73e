"""Queries that find projects and models by the slugs of the Platform protocol.

ultralytics 8.4 names a run `owner/project` and `name` (slugs), `ul://owner/project/model` names
a model the same way and `ul://owner/datasets/slug` a dataset (docs/protocol/platform.md §9.2,
§9.10). A project matches by its name or by
its name slugified; a model by its name within its project. Names are display text in trainhub,
so the oldest match wins, and new Platform models get a name free in their project. Each may also
be named by its id, which renaming never changes.
"""

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainhub.protocol.ids import is_id
from trainhub.protocol.platform import MAX_SLUG_LENGTH, slugify
from trainhub.server.db.tables import DatasetRow, ModelRow, ProjectRow

MAX_CANDIDATES = 200


def find_project(
    session: Session, owner_id: str, slug: str, *, lock: bool = False
) -> ProjectRow | None:
    """Return the owner's live project whose name is `slug`, or slugifies to it."""
    query = (
        select(ProjectRow)
        .where(ProjectRow.owner_id == owner_id, ProjectRow.deleted_at.is_(None))
        .order_by(ProjectRow.seq)
    )
    if lock:
        query = query.with_for_update()
    if is_id(slug):
        by_id = session.scalars(query.where(ProjectRow.id == slug)).first()
        if by_id is not None:
            return by_id
    exact = session.scalars(query.where(ProjectRow.name == slug)).first()
    if exact is not None:
        return exact
    return next(
        (p for p in session.scalars(query.limit(MAX_CANDIDATES)) if slugify(p.name) == slug), None
    )


def find_dataset(session: Session, owner_id: str, slug: str) -> DatasetRow | None:
    """Return the owner's newest live dataset named `slug` (or whose name slugifies to it)."""
    query = (
        select(DatasetRow)
        .where(DatasetRow.owner_id == owner_id, DatasetRow.deleted_at.is_(None))
        .order_by(DatasetRow.seq.desc())
    )
    if is_id(slug):
        by_id = session.scalars(query.where(DatasetRow.id == slug)).first()
        if by_id is not None:
            return by_id
    exact = session.scalars(query.where(DatasetRow.name == slug)).first()
    if exact is not None:
        return exact
    return next(
        (d for d in session.scalars(query.limit(MAX_CANDIDATES)) if slugify(d.name) == slug), None
    )


def find_model(session: Session, project: ProjectRow, name: str) -> ModelRow | None:
    """Return the newest live model named `name` (or whose name slugifies to it) in `project`."""
    query = (
        select(ModelRow)
        .where(ModelRow.project_id == project.id, ModelRow.deleted_at.is_(None))
        .order_by(ModelRow.seq.desc())
    )
    if is_id(name):
        by_id = session.scalars(query.where(ModelRow.id == name)).first()
        if by_id is not None:
            return by_id
    exact = session.scalars(query.where(ModelRow.name == name)).first()
    if exact is not None:
        return exact
    return next(
        (m for m in session.scalars(query.limit(MAX_CANDIDATES)) if slugify(m.name) == name), None
    )


def free_model_name(session: Session, project: ProjectRow, name: str) -> str:
    """Return `name`, or `name-2`, `name-3`, ...: the first no live model of `project` has."""
    taken = set(
        session.scalars(
            select(ModelRow.name).where(
                ModelRow.project_id == project.id,
                ModelRow.deleted_at.is_(None),
                ModelRow.name.startswith(name, autoescape=True),
            )
        )
    )
    if name not in taken:
        return name
    number = 2
    while True:
        suffix = f"-{number}"
        candidate = name[: MAX_SLUG_LENGTH - len(suffix)] + suffix
        if candidate not in taken:
            return candidate
        number += 1
