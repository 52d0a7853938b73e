"""Request and answer bodies of users, API keys and `POST /v1/auth`."""

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from trainhub.protocol.documents import Meta


class UserCreate(BaseModel):
    """Body of `POST /v1/users` (admins) and `PATCH /v1/users/{id}`: `meta.name` or `name`."""

    meta: Meta | None = None
    name: StrictStr | None = None
    is_admin: StrictBool | None = None

    def given_name(self) -> object:
        """Return the name sent, `meta.name` first, None when there is none."""
        return (self.meta.name if self.meta is not None else None) or self.name


class KeyCreate(BaseModel):
    """Body of `POST /v1/keys` (it may be empty): a name to recognise the key by."""

    name: StrictStr = ""


class Identity(BaseModel):
    """Who an API key belongs to, as `POST /v1/auth` answers."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    user_id: str = Field(alias="userId")
    name: str
    is_admin: bool = Field(alias="isAdmin")
