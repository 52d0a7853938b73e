"""Users and their API keys: who may see, change and delete whom (docs/protocol/hub-v1.md §5.20).

Everyone reads and renames themselves; admins list, create, rename, promote and delete others.
A user deletes with everything they own, and their uploads in progress with them.
"""

from sqlalchemy.orm import Session

from trainhub.server.db import changes
from trainhub.server.db import users as queries
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ApiKeyRow, UserRow
from trainhub.server.errors import ForbiddenError, NotFoundError, ValidationError
from trainhub.server.services.blobs import delete_garbage
from trainhub.server.services.identity import KeyCache, Principal
from trainhub.server.storage import Storage


def require_admin(caller: Principal) -> None:
    """Raise 403 unless the caller is an admin."""
    if not caller.is_admin:
        raise ForbiddenError("only an admin can do this; ask your hub's admin")


def _load(session: Session, user_id: str, caller: Principal) -> UserRow:
    row = queries.find_user_by_id(session, user_id)
    if row is None or (row.id != caller.user_id and not caller.is_admin):
        raise NotFoundError("user", user_id)
    return row


def list_users(db: Database, caller: Principal) -> list[UserRow]:
    """Return every user, oldest first (admins only)."""
    require_admin(caller)
    with db.read() as session:
        return queries.list_users(session)


def create_user(
    db: Database, caller: Principal, name: object, *, admin: bool
) -> tuple[UserRow, str]:
    """Create a user with a first key (admins only); return the user and the key (shown once)."""
    require_admin(caller)
    with db.write() as session:
        return queries.create_user(session, queries.check_user_name(name), admin=admin)


def read_user(db: Database, caller: Principal, user_id: str) -> UserRow:
    """Return a user: the caller, or anyone for an admin."""
    with db.read() as session:
        return _load(session, user_id, caller)


def update_user(
    db: Database, caller: Principal, user_id: str, *, name: object, admin: bool | None
) -> UserRow:
    """Rename a user (yourself, or anyone for an admin); only an admin changes `is_admin`."""
    with db.write() as session:
        row = _load(session, user_id, caller)
        if name is not None and name != row.name:
            if queries.find_user(session, queries.check_user_name(name)) is not None:
                raise ValidationError(f"a user named {name!r} already exists")
            row.name = str(name)
        if admin is not None:
            require_admin(caller)
            if row.id == caller.user_id:
                raise ValidationError("you cannot change whether you are an admin yourself")
            row.is_admin = admin
        return row


def delete_user(
    db: Database, storage: Storage, keys: KeyCache, caller: Principal, user_id: str
) -> None:
    """Delete a user and everything they own (admins only; not yourself)."""
    require_admin(caller)
    if user_id == caller.user_id:
        raise ValidationError("you cannot delete yourself; ask another admin")
    with db.write() as session:
        row = _load(session, user_id, caller)
        uploads = queries.unfinished_uploads(session, row.id)
        garbage = queries.delete_user(session, row)
        changes.note(session, None, user_id)  # the streams of its sessions end
    keys.forget(user_id=user_id)  # this process refuses the keys at once, others within a second
    delete_garbage(storage, garbage)
    for upload_id in uploads:  # their rows went with the user; the bytes received go too
        storage.discard_partial(upload_id)


def list_keys(db: Database, user_id: str) -> list[ApiKeyRow]:
    """Return a user's keys, newest first (revoked ones included)."""
    with db.read() as session:
        return queries.list_keys(session, user_id)


def create_key(db: Database, user_id: str, name: str, *, max_live: int) -> tuple[ApiKeyRow, str]:
    """Create a key for the user (at most `max_live` unrevoked); return it, shown only once."""
    with db.write() as session:
        return queries.create_key(session, user_id, name, max_live=max_live)


def revoke_key(db: Database, keys: KeyCache, user_id: str, key_id: str) -> ApiKeyRow:
    """Revoke one of the user's keys by id or prefix; it is refused from then on.

    This process refuses it at once; other processes and replicas within KEY_TTL_S.
    """
    with db.write() as session:
        row = queries.revoke_key(session, user_id, key_id)
    if row is None:
        raise NotFoundError("API key", key_id)
    keys.forget(key_id=row.id)
    return row


def count_owned(db: Database, user_id: str) -> dict[str, int]:
    """Return how many live projects, datasets and models the user owns."""
    with db.read() as session:
        return queries.count_owned(session, user_id)
