"""Queries of users and their API keys (keys are stored as sha256 hashes only)."""

import re
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from trainhub.protocol.ids import create_api_key, create_id, hash_api_key, is_id, key_prefix
from trainhub.server.db import changes, dataset_exports
from trainhub.server.db.tables import (
    ApiKeyRow,
    DatasetRow,
    ModelRow,
    ProjectRow,
    ResumableUploadRow,
    StagedUploadRow,
    UserRow,
    WeightRow,
    utcnow,
)
from trainhub.server.errors import ConflictError, ValidationError

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_PREFIX_RE = re.compile(r"^ul[0-9a-f]{6}$")


def check_user_name(name: object) -> str:
    """Return `name` if it is a valid user name (letters, digits, . _ @ -; up to 100)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValidationError(
            "a user name has 1 to 100 letters, digits, '.', '_', '@' or '-' "
            "and starts with a letter or digit"
        )
    return name


def create_key(
    session: Session, user_id: str, name: str = "", *, max_live: int | None = None
) -> tuple[ApiKeyRow, str]:
    """Create an API key for a user; return its row and the key itself (shown only once).

    With `max_live`, a user who already holds that many unrevoked keys gets a ConflictError.
    """
    if max_live is not None:
        live = session.scalar(
            select(func.count())
            .select_from(ApiKeyRow)
            .where(ApiKeyRow.user_id == user_id, ApiKeyRow.revoked_at.is_(None))
        )
        if (live or 0) >= max_live:
            raise ConflictError(
                f"you already have {max_live} active API keys, the most this hub allows; "
                "revoke one you no longer use, then create the new one"
            )
    key = create_api_key()
    row = ApiKeyRow(
        id=create_id(),
        user_id=user_id,
        name=name.replace("\x00", "")[:100],  # display text; PostgreSQL text cannot hold NUL
        prefix=key_prefix(key),
        key_hash=hash_api_key(key),
    )
    session.add(row)
    session.flush()
    return row, key


def create_user(session: Session, name: str, *, admin: bool = False) -> tuple[UserRow, str]:
    """Create a user with a first API key; return the user and the key."""
    check_user_name(name)
    if session.scalar(select(UserRow.id).where(UserRow.name == name)) is not None:
        raise ConflictError(f"a user named {name!r} already exists; pick another name")
    user = UserRow(id=create_id(), name=name, is_admin=admin)
    session.add(user)
    session.flush()
    _, key = create_key(session, user.id, "first key")
    return user, key


def count_users(session: Session) -> int:
    """Return how many users exist."""
    return session.scalar(select(func.count()).select_from(UserRow)) or 0


def find_user_by_id(session: Session, user_id: str) -> UserRow | None:
    """Return the user with this id, None when there is none."""
    return session.get(UserRow, user_id) if is_id(user_id) else None


def list_users(session: Session) -> list[UserRow]:
    """Return every user, oldest first."""
    return list(session.scalars(select(UserRow).order_by(UserRow.created_at)))


def find_user(session: Session, name_or_id: str) -> UserRow | None:
    """Return the user with this name or id."""
    return session.scalars(
        select(UserRow).where((UserRow.name == name_or_id) | (UserRow.id == name_or_id))
    ).first()


def find_live_key(session: Session, key_hash: str) -> tuple[ApiKeyRow, UserRow] | None:
    """Return the unrevoked key stored under `key_hash` and its user, None when there is none."""
    found = session.execute(
        select(ApiKeyRow, UserRow)
        .join(UserRow, UserRow.id == ApiKeyRow.user_id)
        .where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
    ).first()
    return None if found is None else (found[0], found[1])


def note_key_use(session: Session, key_id: str, now: datetime) -> None:
    """Record that the key `key_id` was used at `now`."""
    session.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=now))


def list_keys(session: Session, user_id: str) -> list[ApiKeyRow]:
    """Return a user's keys, newest first (revoked ones included)."""
    return list(
        session.scalars(
            select(ApiKeyRow)
            .where(ApiKeyRow.user_id == user_id)
            .order_by(ApiKeyRow.created_at.desc())
        )
    )


def revoke_key(session: Session, user_id: str, key_id: str) -> ApiKeyRow | None:
    """Revoke one of a user's keys by id or prefix; return it, None if there is no such key."""
    if not (is_id(key_id) or _PREFIX_RE.match(key_id)):
        return None
    row = session.scalars(
        select(ApiKeyRow).where(
            ApiKeyRow.user_id == user_id, (ApiKeyRow.id == key_id) | (ApiKeyRow.prefix == key_id)
        )
    ).first()
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
        changes.note(session, None, user_id)  # the streams of its sessions end
    return row


def unfinished_uploads(session: Session, user_id: str) -> list[str]:
    """Return the ids of a user's resumable uploads in progress."""
    return list(
        session.scalars(select(ResumableUploadRow.id).where(ResumableUploadRow.owner_id == user_id))
    )


def delete_user(session: Session, user: UserRow) -> list[str]:
    """Delete a user and all they own; return the blob keys that became garbage."""
    keys = list(
        session.scalars(
            select(WeightRow.blob_key)
            .join(ModelRow, ModelRow.seq == WeightRow.model_seq)
            .where(ModelRow.owner_id == user.id)
        )
    )
    keys += [
        k
        for k in session.scalars(
            select(StagedUploadRow.blob_key)
            .join(ModelRow, ModelRow.seq == StagedUploadRow.model_seq)
            .where(ModelRow.owner_id == user.id, StagedUploadRow.state == "received")
        )
        if k
    ]
    keys += [
        k
        for k in session.scalars(select(DatasetRow.blob_key).where(DatasetRow.owner_id == user.id))
        if k
    ]
    datasets = list(session.scalars(select(DatasetRow.seq).where(DatasetRow.owner_id == user.id)))
    keys += dataset_exports.all_keys(session, datasets)
    keys += [
        k
        for k in session.scalars(select(ProjectRow.cover_key).where(ProjectRow.owner_id == user.id))
        if k
    ]
    session.delete(user)
    return keys


def count_owned(session: Session, user_id: str) -> dict[str, int]:
    """Return how many live projects, datasets and models a user owns."""
    counts = {}
    for label, table in (("projects", ProjectRow), ("datasets", DatasetRow), ("models", ModelRow)):
        counts[label] = (
            session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.owner_id == user_id, table.deleted_at.is_(None))
            )
            or 0
        )
    return counts
