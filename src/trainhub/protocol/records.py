"""What the server returns for models, datasets, projects, users and keys.

The model record is described in docs/protocol/hub-v1.md §6.

The records allow extra keys: a model keeps whatever document its owner stored (merged by PATCH)
next to the fields the server derives.
"""

from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelRecord(BaseModel):
    """A model as `GET /v1/models/{id}` returns it (the fields ultralytics and hub-sdk read)."""

    model_config = ConfigDict(extra="allow")

    id: str
    meta: dict[str, Any]
    status: str
    public: bool
    has_last_weights: bool
    has_best_weights: bool
    is_pretrained: bool
    is_custom: bool
    cfg: str | None
    data: str | None
    weights: str | None
    resume: str | None
    train_args: dict[str, Any]
    dataset: dict[str, Any]
    project: dict[str, Any]
    batch_size: float | int | None
    epochs: int | None
    imgsz: int | list[int] | None
    patience: int | None
    device: str | None
    cache: str | bool | None
    createdAt: str
    updatedAt: str


class DatasetRecord(BaseModel):
    """A dataset: `url` is a signed download link once an archive was uploaded."""

    model_config = ConfigDict(extra="allow")

    id: str
    meta: dict[str, Any]
    public: bool
    filename: str | None
    url: str | None
    size_bytes: int | None
    sha256: str | None
    status: str
    createdAt: str
    updatedAt: str


class ProjectRecord(BaseModel):
    """A project: a named group of models with an optional cover image."""

    model_config = ConfigDict(extra="allow")

    id: str
    meta: dict[str, Any]
    public: bool
    cover: str | None
    createdAt: str
    updatedAt: str


class UserRecord(BaseModel):
    """A user; `apiKey` appears once, in the answer that created the user.

    `platformApiKey` is the same key spelled for ultralytics 8.4 (docs/protocol/platform.md §9.9).
    """

    id: str
    meta: dict[str, Any]
    is_admin: bool
    createdAt: str
    apiKey: str | None = None
    platformApiKey: str | None = None


class KeyRecord(BaseModel):
    """An API key as listed: its prefix, never the key; `key` appears once, when it is created.

    `key` is spelled for HUB clients (hub-sdk, ultralytics 8.3, trainhub: `ul` + 40 hex),
    `platformKey` is the same key for ultralytics 8.4 (`ul_` + 40 hex).
    """

    id: str
    name: str
    prefix: str
    createdAt: str
    lastUsedAt: str | None
    revokedAt: str | None
    key: str | None = None
    platformKey: str | None = None
