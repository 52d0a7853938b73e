"""Request bodies that create or change models, datasets and projects (owner documents).

A document keeps whatever its owner sends, as HUB did (unknown keys too, so `extra="allow"`);
these models give the known keys their types. A PATCH uses the same model: every key is
optional, and an explicit null removes a key (docs/protocol/hub-v1.md §5.5).
"""

from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr


class Meta(BaseModel):
    """The `meta` object: the display name, and whatever else the owner keeps there."""

    model_config = ConfigDict(extra="allow")

    name: Any = None


class Document(BaseModel):
    """What every owner document may hold."""

    model_config = ConfigDict(extra="allow")

    meta: Meta | None = None
    public: StrictBool | None = None

    def written(self) -> dict[str, Any]:
        """Return what the sender wrote, as plain JSON values (unknown keys included)."""
        return self.model_dump(mode="json", exclude_unset=True)


class ModelDocument(Document):
    """Body of `POST /v1/models` and `PATCH /v1/models/{id}` (ultralytics and hub-sdk shapes)."""

    config: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None
    datasetId: StrictStr | None = None
    projectId: StrictStr | None = None


class DatasetDocument(Document):
    """Body of `POST /v1/datasets` and `PATCH /v1/datasets/{id}`."""

    filename: StrictStr | None = None


class ProjectDocument(Document):
    """Body of `POST /v1/projects` and `PATCH /v1/projects/{id}`."""
