"""Users (admins manage them; everyone reads and renames themselves) and API keys.

See docs/protocol/hub-v1.md §5.20 and §5.23.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from trainhub.protocol import paths
from trainhub.protocol.envelope import Envelope, IdRecord
from trainhub.protocol.ids import platform_spelling
from trainhub.protocol.records import KeyRecord, UserRecord
from trainhub.protocol.users import KeyCreate, UserCreate
from trainhub.server.bodies import body_of, json_body_schema, optional_json_object, validated
from trainhub.server.db.tables import ApiKeyRow, iso
from trainhub.server.deps import CurrentUser, Db, Keys, SettingsDep, StorageDep
from trainhub.server.records import user_record
from trainhub.server.services import users

router = APIRouter(tags=["users"])
UserBody = Annotated[UserCreate, Depends(body_of(UserCreate))]


def key_record(row: ApiKeyRow, key: str | None = None) -> dict[str, Any]:
    """Return the JSON record of an API key (the key itself, in both spellings, only when just
    created: docs/protocol/platform.md §9.9)."""
    return {
        "id": row.id,
        "name": row.name,
        "prefix": row.prefix,
        "createdAt": iso(row.created_at),
        "lastUsedAt": iso(row.last_used_at),
        "revokedAt": iso(row.revoked_at),
        "key": key,
        "platformKey": platform_spelling(key) if key is not None else None,
    }


@router.get(paths.USERS, response_model=Envelope[list[UserRecord]])
def list_users(user: CurrentUser, db: Db) -> dict[str, Any]:
    """List every user (admins only)."""
    return {"success": True, "data": [user_record(r) for r in users.list_users(db, user)]}


@router.post(
    paths.USERS, response_model=Envelope[UserRecord], openapi_extra=json_body_schema(UserCreate)
)
def create_user(user: CurrentUser, db: Db, body: UserBody) -> dict[str, Any]:
    """Create a user (admins only); the answer holds the new user's API key, shown once."""
    row, key = users.create_user(db, user, body.given_name(), admin=bool(body.is_admin))
    return {"success": True, "message": "user created", "data": user_record(row, key)}


@router.get(paths.USER, response_model=Envelope[UserRecord])
def read_user(user_id: str, user: CurrentUser, db: Db) -> dict[str, Any]:
    """Return a user: yourself, or anyone for an admin."""
    return {"success": True, "data": user_record(users.read_user(db, user, user_id))}


@router.patch(
    paths.USER, response_model=Envelope[UserRecord], openapi_extra=json_body_schema(UserCreate)
)
def update_user(user_id: str, user: CurrentUser, db: Db, body: UserBody) -> dict[str, Any]:
    """Rename a user (yourself, or anyone for an admin); only an admin changes `is_admin`."""
    row = users.update_user(db, user, user_id, name=body.given_name(), admin=body.is_admin)
    return {"success": True, "message": "user updated", "data": user_record(row)}


@router.delete(paths.USER, response_model=Envelope[IdRecord])
def delete_user(
    user_id: str, user: CurrentUser, db: Db, storage: StorageDep, keys: Keys
) -> dict[str, Any]:
    """Delete a user and everything they own (admins only; not yourself)."""
    users.delete_user(db, storage, keys, user, user_id)
    return {"success": True, "message": "user deleted", "data": {"id": user_id}}


@router.get(paths.KEYS, response_model=Envelope[list[KeyRecord]])
def list_keys(user: CurrentUser, db: Db) -> dict[str, Any]:
    """List your API keys by prefix, with when each was last used."""
    return {"success": True, "data": [key_record(k) for k in users.list_keys(db, user.user_id)]}


@router.post(
    paths.KEYS,
    response_model=Envelope[KeyRecord],
    openapi_extra=json_body_schema(KeyCreate, required=False),
)
def create_key(
    user: CurrentUser,
    db: Db,
    settings: SettingsDep,
    body: Annotated[dict[str, Any], Depends(optional_json_object)],
) -> dict[str, Any]:
    """Create an API key; the answer is the only time the key is shown."""
    name = validated(KeyCreate, body).name
    row, key = users.create_key(db, user.user_id, name, max_live=settings.max_keys_per_user)
    return {
        "success": True,
        "message": "key created; store it now, it is not shown again",
        "data": key_record(row, key),
    }


@router.delete(paths.KEY, response_model=Envelope[KeyRecord])
def revoke_key(key_id: str, user: CurrentUser, db: Db, keys: Keys) -> dict[str, Any]:
    """Revoke one of your API keys; it is refused from then on."""
    row = users.revoke_key(db, keys, user.user_id, key_id)
    return {"success": True, "message": "key revoked", "data": key_record(row)}
