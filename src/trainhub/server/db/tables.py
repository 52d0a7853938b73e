"""SQLAlchemy table classes (one `*Row` per table). Times are stored as UTC.

Models, datasets and projects carry an integer `seq` (list order and cursor) beside their public
20-character `id`, and a JSON `doc` holding what their owner stored (merged by PATCH).
"""

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as naive UTC and read back as aware UTC (SQLite drops offsets)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use datetime.now(UTC)")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    """Return an ISO 8601 UTC timestamp ending in Z (None stays None)."""
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class WebSessionRow(Base):
    """A dashboard sign-in: the browser's cookie holds a random token, stored here as its sha256.

    A session is live while `ended_at` is unset (sign-out sets it), `expires_at` (absolute) and
    `last_seen_at` plus the idle timeout are in the future, and its API key is not revoked.
    """

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class OwnedMixin:
    """Columns shared by models, datasets and projects."""

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(20), unique=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    doc: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)


class ProjectRow(OwnedMixin, Base):
    __tablename__ = "projects"

    cover_key: Mapped[str | None] = mapped_column(String(200), default=None)
    cover_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    cover_type: Mapped[str | None] = mapped_column(String(40), default=None)


class DatasetRow(OwnedMixin, Base):
    __tablename__ = "datasets"

    filename: Mapped[str | None] = mapped_column(String(255), default=None)
    blob_key: Mapped[str | None] = mapped_column(String(200), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    layout: Mapped[str | None] = mapped_column(String(20), default=None)
    archive_root: Mapped[str | None] = mapped_column(String(255), default=None)


class ModelRow(OwnedMixin, Base):
    __tablename__ = "models"

    project_id: Mapped[str | None] = mapped_column(String(20), default=None, index=True)
    dataset_id: Mapped[str | None] = mapped_column(String(20), default=None, index=True)
    status: Mapped[str] = mapped_column(String(20), default="new")
    best_map: Mapped[float | None] = mapped_column(Float, default=None)
    # the highest main metric (mAP50-95) among the stored epochs, kept up to date by every
    # metrics write, so that a list of models never reads their epochs
    best_metric: Mapped[float | None] = mapped_column(Float, default=None)
    last_epoch: Mapped[int | None] = mapped_column(Integer, default=None)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)


class MetricRow(Base):
    __tablename__ = "metrics"

    model_seq: Mapped[int] = mapped_column(
        ForeignKey("models.seq", ondelete="CASCADE"), primary_key=True
    )
    epoch: Mapped[int] = mapped_column(Integer, primary_key=True)
    values: Mapped[str] = mapped_column(Text)  # JSON text of {name: number | null}
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WeightRow(Base):
    """The newest epoch checkpoint ("last") and final weights ("best") of a model."""

    __tablename__ = "weights"

    model_seq: Mapped[int] = mapped_column(
        ForeignKey("models.seq", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    epoch: Mapped[int] = mapped_column(Integer)
    is_best: Mapped[bool] = mapped_column(Boolean, default=False)
    map: Mapped[float | None] = mapped_column(Float, default=None)
    blob_key: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentRow(Base):
    """A training process that beats for a model; its id is issued by the server.

    `protocol` says how it reports: "hub" (heartbeats every `interval_s`) or "platform" (no
    heartbeat: `interval_s` is the silence after which its run counts as stale,
    docs/protocol/platform.md §9.4).
    """

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    model_seq: Mapped[int] = mapped_column(ForeignKey("models.seq", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    protocol: Mapped[str] = mapped_column(String(10), default="hub", server_default="hub")
    interval_s: Mapped[float] = mapped_column(Float)
    state: Mapped[str] = mapped_column(String(20), default="running")
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class ResumableUploadRow(Base):
    """A tus upload in progress: its target, declared length and bytes received so far.

    `state` is where storage keeps the bytes (the S3 multipart upload, its parts and tail), so
    any replica continues the upload; `offset` moves only by compare-and-set, and `last_part`
    hands out S3 part numbers (docs/decisions/0022-resumable-uploads-on-any-replica.md).
    """

    __tablename__ = "resumable_uploads"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    model_id: Mapped[str] = mapped_column(String(20), index=True)
    length: Mapped[int] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_part: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExportRow(Base):
    """An export job: one model's final weights (by hash) in one format, and where it stands.

    The worker that claims a queued job moves it to `running` and reports on it every few
    seconds (`heartbeat_at`); a job whose worker went silent is queued again or failed by
    whichever worker notices (docs/decisions/0017-job-queue.md). The file is recorded only once
    it is published, so a `done` job always has a complete file.
    """

    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("model_seq", "format", "weights_sha256"),)

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    model_seq: Mapped[int] = mapped_column(ForeignKey("models.seq", ondelete="CASCADE"), index=True)
    requested_by: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    format: Mapped[str] = mapped_column(String(20))
    weights_key: Mapped[str] = mapped_column(String(200))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="queued", index=True)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(20), default=None)
    blob_key: Mapped[str | None] = mapped_column(String(200), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkerRow(Base):
    """A `trainhub worker` process, as it last reported itself (liveness and what it can run)."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    threads: Mapped[int] = mapped_column(Integer)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    stopped_at: Mapped[datetime | None] = mapped_column(default=None)


class RunRow(Base):
    """One training process that reports through the Platform protocol; `id` is its `runId`.

    A resumed run is a new row of the same model. Its liveness is an AgentRow (`agent_id`)
    whose interval grows with the run's longest epoch (docs/protocol/platform.md §9.4).
    """

    __tablename__ = "platform_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_seq: Mapped[int] = mapped_column(ForeignKey("models.seq", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(String(20))
    agent_id: Mapped[str] = mapped_column(String(20))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    state: Mapped[str] = mapped_column(String(20), default="running")
    planned_epochs: Mapped[int | None] = mapped_column(Integer, default=None)
    last_epoch: Mapped[int | None] = mapped_column(Integer, default=None)
    longest_epoch_s: Mapped[float | None] = mapped_column(Float, default=None)
    last_epoch_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_event_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    train_args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    final_epoch: Mapped[int | None] = mapped_column(Integer, default=None)
    final_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    results: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    class_names: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    plots: Mapped[list[Any] | None] = mapped_column(JSON, default=None)


class ConsoleChunkRow(Base):
    """A batch of console lines of a model's runs; chunk ids order them across runs."""

    __tablename__ = "console_chunks"

    model_seq: Mapped[int] = mapped_column(
        ForeignKey("models.seq", ondelete="CASCADE"), primary_key=True
    )
    chunk_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    content: Mapped[str] = mapped_column(Text, default="")
    line_count: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class StagedUploadRow(Base):
    """A weights file sent to a Platform upload URL, staged until an event promotes it.

    `state`: issued (URL handed out), received (bytes stored at `blob_key`), promoted (the
    model's weights now), superseded (a newer upload was promoted; the blob is gone).
    """

    __tablename__ = "platform_uploads"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    model_seq: Mapped[int] = mapped_column(ForeignKey("models.seq", ondelete="CASCADE"), index=True)
    run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    filename: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20), default="issued")
    blob_key: Mapped[str | None] = mapped_column(String(200), default=None)
    sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    received_at: Mapped[datetime | None] = mapped_column(default=None)
    promoted_at: Mapped[datetime | None] = mapped_column(default=None)


class DatasetExportRow(Base):
    """The NDJSON export of one version of a dataset: its manifest and its image blobs.

    Built on the first `data=ul://...` of a version (docs/protocol/platform.md §9.10); the blobs
    are content-addressed per dataset, so versions that share images share blobs.
    """

    __tablename__ = "dataset_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_seq: Mapped[int] = mapped_column(
        ForeignKey("datasets.seq", ondelete="CASCADE"), index=True
    )
    archive_sha256: Mapped[str] = mapped_column(String(64))
    manifest_key: Mapped[str] = mapped_column(String(200))
    blob_keys: Mapped[list[Any]] = mapped_column(JSON, default=list)
    images: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveChangeRow(Base):
    """One change that open dashboard pages may show: which model, whose (db/changes.py).

    Written in the transaction of the change; `id` orders the changes of every replica and is
    the id of the live events that follow it (docs/dashboard.md, "Live updates"). Rows older than
    an hour are pruned.
    """

    __tablename__ = "live_changes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    model_id: Mapped[str | None] = mapped_column(String(20), default=None)
    user_id: Mapped[str | None] = mapped_column(String(20), default=None)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
