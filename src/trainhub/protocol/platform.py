"""The Platform training protocol of ultralytics 8.4: request bodies, answers, names.

See docs/protocol/platform.md §4. The stock callback sends JSON it builds from the trainer, so
the models here are lenient where the client is loose (extra keys are kept, `data` values are
typed only as far as the server reads them) and strict only where a wrong value could corrupt
what is stored (epochs, chunk ids, run ids, file names).
"""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from trainhub.protocol.metrics import MAX_EPOCH

EventName = Literal[
    "training_started",
    "epoch_end",
    "console_output",
    "checkpoint_saved",
    "training_complete",
    # typed by the SDK, never sent by ultralytics 8.4 (docs/protocol/platform.md §4.2)
    "training_progress",
    "system_metrics",
    "training_failed",
]
UNSENT_EVENTS = frozenset({"training_progress", "system_metrics", "training_failed"})
MAX_RUN_ID = 2**53  # a JSON number every client reads back exactly
MAX_CHUNK_ID = 2**63 - 1
MAX_SLUG_LENGTH = 128
DEFAULT_RUN_NAME = "train"
_WEIGHTS_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.pt$")
_NOT_SLUG = re.compile(r"[^a-z0-9-]+")


class _Open(BaseModel):
    """A body whose unknown keys are kept: newer clients may send more."""

    model_config = ConfigDict(extra="allow")


class PlatformEvent(_Open):
    """Body of `POST /api/webhooks/training/metrics`: one event of a training run.

    A run's first `training_started` names `project` and `name`; every later event names the
    `modelId` the server answered (docs/protocol/platform.md §4.1).
    """

    event: EventName
    data: dict[str, Any] = Field(default_factory=dict)
    modelId: StrictStr | None = None
    project: StrictStr | None = Field(default=None, max_length=300)
    name: StrictStr | None = Field(default=None, max_length=300)


class TrainingStarted(_Open):
    """`data` of `training_started`: the train arguments (as strings), environment, system."""

    trainArgs: dict[str, Any] = Field(default_factory=dict)
    epochs: StrictInt | None = Field(default=None, ge=0, le=MAX_EPOCH)
    device: str | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    system: dict[str, Any] | None = None


class EpochEnd(_Open):
    """`data` of `epoch_end`: one epoch's metrics, or the final validation of best.pt."""

    epoch: StrictInt = Field(ge=0, le=MAX_EPOCH)
    metrics: dict[str, Any] = Field(default_factory=dict)
    system: dict[str, Any] | None = None
    fitness: float | None = None
    best_fitness: float | None = None
    modelInfo: dict[str, Any] | None = None


class ConsoleOutput(_Open):
    """`data` of `console_output`: a batch of console lines, ordered by `chunkId`."""

    chunkId: StrictInt = Field(ge=0, le=MAX_CHUNK_ID)
    content: StrictStr = ""
    lineCount: StrictInt = Field(default=0, ge=0)
    progress: dict[str, Any] = Field(default_factory=dict)


class CheckpointSaved(_Open):
    """`data` of `checkpoint_saved`: the `gcsPath` of an upload, echoed as `modelPath`."""

    modelPath: StrictStr = Field(max_length=300)
    runId: StrictInt | None = Field(default=None, ge=0, le=MAX_RUN_ID)
    uploadPath: StrictStr | None = None


class TrainingComplete(_Open):
    """`data` of `training_complete`: final results, class names and plots of a run."""

    runId: StrictInt | None = Field(default=None, ge=0, le=MAX_RUN_ID)
    results: dict[str, Any] = Field(default_factory=dict)
    classNames: list[Any] | None = None
    plots: list[Any] | None = None


class UploadRequest(_Open):
    """Body of `POST /api/webhooks/models/upload`: which weights file of which run."""

    filename: StrictStr = Field(max_length=100)
    modelId: StrictStr | None = None
    runId: StrictInt | None = Field(default=None, ge=0, le=MAX_RUN_ID)
    project: StrictStr | None = Field(default=None, max_length=300)
    name: StrictStr | None = Field(default=None, max_length=300)


class EventAnswer(_Open):
    """What every event is answered with; `training_started` adds the model and run."""

    received: bool = True
    event: str
    modelId: str | None = None
    runId: int | None = None
    modelUrl: str | None = None
    modelSlug: str | None = None
    cancelled: bool | None = None
    ignored: bool | None = None
    reason: str | None = None


class UploadAnswer(BaseModel):
    """The answer to an upload-URL request; `uploadUrl` is always there."""

    uploadUrl: str
    gcsPath: str
    uploadPath: str
    modelId: str


class AccountCounts(BaseModel):
    projects: int
    datasets: int
    models: int


class AccountSummary(BaseModel):
    """`GET /api/account/summary`: who a key belongs to (`yolo login` only checks the status)."""

    username: str
    name: str
    accountType: str
    plan: str
    creditsCents: int
    counts: AccountCounts
    teams: list[Any]


class ModelFile(BaseModel):
    """One downloadable file of a model (`GET /api/models/{owner}/{project}/{model}/files`)."""

    name: str
    size: int
    downloadUrl: str


class ModelFiles(BaseModel):
    files: list[ModelFile]


class DatasetExport(BaseModel):
    """`GET /api/datasets/{owner}/{slug}/export`: where the NDJSON export of a dataset is."""

    downloadUrl: str
    version: str


def slugify(text: str) -> str:
    """Return `text` as the client slugifies names: lower case, `a-z0-9-`, at most 128.

    Idempotent on what ultralytics already slugified; whitespace and `/` become `-`.
    """
    lowered = re.sub(r"[\s/]+", "-", text.lower())
    return re.sub(r"-+", "-", _NOT_SLUG.sub("", lowered)).strip("-")[:MAX_SLUG_LENGTH]


def split_project(project: str) -> tuple[str, str]:
    """Return (owner, project slug) of a `project` field; the owner is "" when none is named.

    `me/my-proj` -> ("me", "my-proj"); `my-proj` -> ("", "my-proj"); the owner is kept as sent
    (docs/protocol/platform.md §4.1).
    """
    owner, slash, rest = project.partition("/")
    if not slash:
        return "", slugify(project)
    return owner.strip(), slugify(rest)


def is_weights_file(name: str) -> bool:
    """Tell whether `name` is a plain weights file name such as best.pt or last.pt."""
    return bool(_WEIGHTS_FILE.match(name))
