"""Users (admins manage them; everyone reads and renames themselves) and API keys.

See docs/protocol/hub-v1.md §5.20 and §5.23.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import select

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope
from trainhub.protocol.ids import is_id
from trainhub.protocol.records import KeyRecord, UserRecord
from trainhub.server.bodies import json_body_schema, json_object, optional_json_object
from trainhub.server.db import users as queries
from trainhub.server.db.tables import ApiKeyRow, UserRow
from trainhub.server.deps import CurrentUser, Db, Principal, SettingsDep, StorageDep
from trainhub.server.errors import ForbiddenError, NotFoundError, ValidationError
from trainhub.server.records import iso, user_record

router = APIRouter(tags=["users"])
Body = Annotated[dict[str, Any], Depends(json_object)]
USER_SCHEMA = {
    "type": "object",
    "properties": {
        "meta": {"type": "object", "properties": {"name": {"type": "string"}}},
        "name": {"type": "string"},
        "is_admin": {"type": "boolean"},
    },
}


def _require_admin(user: Principal) -> None:
    if not user.is_admin:
        raise ForbiddenError("only an admin can do this; ask your hub's admin")


def _name_from(body: dict[str, Any]) -> Any:
    meta = body.get("meta")
    return (meta.get("name") if isinstance(meta, dict) else None) or body.get("name")


def _load_user(session: Any, user_id: str, caller: Principal) -> UserRow:
    row = session.get(UserRow, user_id) if is_id(user_id) else None
    if row is None or (row.id != caller.user_id and not caller.is_admin):
        raise NotFoundError("user", user_id)
    return row  # type: ignore[no-any-return]


def key_record(row: ApiKeyRow, key: str | None = None) -> dict[str, Any]:
    """Return the JSON record of an API key (the key itself only when just created)."""
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "createdAt": iso(row.created_at),
        "lastUsedAt": iso(row.last_used_at),
        "revokedAt": iso(row.revoked_at),
        "key": key,
    }


@router.get(paths.USERS, response_model=Envelope[list[UserRecord]])
def list_users(user: CurrentUser, db: Db) -> dict[str, Any]:
    """List every user (admins only)."""
    _require_admin(user)
    with db.read() as session:
        rows = session.scalars(select(UserRow).order_by(UserRow.created_at))
        return {"success": True, "data": [user_record(r) for r in rows]}


@router.post(
    paths.USERS, response_model=Envelope[UserRecord], openapi_extra=json_body_schema(USER_SCHEMA)
)
def create_user(user: CurrentUser, db: Db, body: Body) -> dict[str, Any]:
    """Create a user (admins only); the answer holds the new user's API key, shown once."""
    _require_admin(user)
    admin = body.get("is_admin", False)
    if not isinstance(admin, bool):
        raise ValidationError("'is_admin' must be true or false")
    with db.write() as session:
        row, key = queries.create_user(session, _name_from(body), admin=admin)
        return {"success": True, "message": "user created", "data": user_record(row, key)}


@router.get(paths.USER, response_model=Envelope[UserRecord])
def read_user(user_id: str, user: CurrentUser, db: Db) -> dict[str, Any]:
    """Return a user: yourself, or anyone for an admin."""
    with db.read() as session:
        return {"success": True, "data": user_record(_load_user(session, user_id, user))}


@router.patch(
    paths.USER, response_model=Envelope[UserRecord], openapi_extra=json_body_schema(USER_SCHEMA)
)
def update_user(user_id: str, user: CurrentUser, db: Db, body: Body) -> dict[str, Any]:
    """Rename a user (yourself, or anyone for an admin); only an admin changes `is_admin`."""
    with db.write() as session:
        row = _load_user(session, user_id, user)
        name = _name_from(body)
        if name is not None and name != row.name:
            if queries.find_user(session, queries.check_user_name(name)) is not None:
                raise ValidationError(f"a user named {name!r} already exists")
            row.name = name
        if "is_admin" in body:
            _require_admin(user)
            if not isinstance(body["is_admin"], bool) or row.id == user.user_id:
                raise ValidationError("'is_admin' must be true or false, and not your own")
            row.is_admin = body["is_admin"]
        return {"success": True, "message": "user updated", "data": user_record(row)}


@router.delete(paths.USER, response_model=Envelope[dict[str, Any]])
def delete_user(user_id: str, user: CurrentUser, db: Db, storage: StorageDep) -> dict[str, Any]:
    """Delete a user and everything they own (admins only; not yourself)."""
    _require_admin(user)
    if user_id == user.user_id:
        raise ValidationError("you cannot delete yourself; ask another admin")
    with db.write() as session:
        row = _load_user(session, user_id, user)
        uploads = queries.unfinished_uploads(session, row.id)
        garbage = queries.delete_user(session, row)
    for key in garbage:
        storage.delete(key)
    for upload_id in uploads:  # their rows went with the user; the bytes received go too
        storage.partial_path(upload_id).unlink(missing_ok=True)
    return {"success": True, "message": "user deleted", "data": {"id": user_id}}


@router.get(paths.KEYS, response_model=Envelope[list[KeyRecord]])
def list_keys(user: CurrentUser, db: Db) -> dict[str, Any]:
    """List your API keys by prefix, with when each was last used."""
    with db.read() as session:
        return {
            "success": True,
            "data": [key_record(k) for k in queries.list_keys(session, user.user_id)],
        }


@router.post(
    paths.KEYS,
    response_model=Envelope[KeyRecord],
    openapi_extra=json_body_schema(
        {"type": "object", "properties": {"name": {"type": "string"}}}, required=False
    ),
)
def create_key(
    user: CurrentUser,
    db: Db,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Depends(optional_json_object)],
) -> dict[str, Any]:
    """Create an API key; the answer is the only time the key is shown."""
    name = body.get("name", "")
    if not isinstance(name, str):
        raise ValidationError("'name' must be a string")
    with db.write() as session:
        row, key = queries.create_key(
            session, user.user_id, name, max_live=settings.max_keys_per_user
        )
        return {
            "success": True,
            "message": "key created; store it now, it is not shown again",
            "data": key_record(row, key),
        }


@router.delete(paths.KEY, response_model=Envelope[KeyRecord])
def revoke_key(key_id: str, user: CurrentUser, db: Db) -> dict[str, Any]:
    """Revoke one of your API keys; it is refused from then on."""
    with db.write() as session:
        row = queries.revoke_key(session, user.user_id, key_id)
        if row is None:
            raise NotFoundError("API key", key_id)
        return {"success": True, "message": "key revoked", "data": key_record(row)}
