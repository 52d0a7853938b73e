"""The durable outbox: what a training session still has to send, kept on disk until a 2xx.

A SQLite file (standard library) in WAL mode with synchronous=NORMAL: a commit is in the WAL file
before the call returns, so a killed process loses nothing, and it costs the training thread tens
of microseconds, not an fsync. Metrics are merged per (model, epoch); a newer pending checkpoint
replaces an older one (only the newest `last.pt` matters); the final weights are kept once per
model. Items leave the outbox only when the worker acknowledges a successful upload, and an
acknowledgement never removes a value that was changed after it was read (a version counter).
"""

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics (
    server TEXT NOT NULL, model_id TEXT NOT NULL, epoch INTEGER NOT NULL,
    vals TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (server, model_id, epoch));
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT, server TEXT NOT NULL, model_id TEXT NOT NULL,
    kind TEXT NOT NULL, path TEXT NOT NULL, epoch INTEGER NOT NULL, is_best INTEGER NOT NULL,
    map REAL, created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    upload_url TEXT, size_bytes INTEGER, mtime_ns INTEGER);
CREATE INDEX IF NOT EXISTS uploads_by_model ON uploads (server, model_id, kind);
"""


def default_path() -> Path:
    """Return the outbox file: $TRAINHUB_OUTBOX, else ~/.cache/trainhub/outbox.sqlite3."""
    if os.environ.get("TRAINHUB_OUTBOX"):
        return Path(os.environ["TRAINHUB_OUTBOX"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trainhub" / "outbox.sqlite3"


@dataclass(frozen=True)
class PendingMetrics:
    """One epoch of metrics waiting to be sent."""

    server: str
    model_id: str
    epoch: int
    values: dict[str, Any]
    version: int


@dataclass(frozen=True)
class PendingUpload:
    """A checkpoint ("checkpoint") or final weights ("final") waiting to be sent."""

    id: int
    server: str
    model_id: str
    kind: str
    path: Path
    epoch: int
    is_best: bool
    map: float | None
    attempts: int
    upload_url: str | None
    size_bytes: int | None = None  # the file as it was when queued (None: not recorded)
    mtime_ns: int | None = None


@dataclass(frozen=True)
class Pending:
    """What of one model waits in the outbox."""

    metrics: int = 0  # epochs
    checkpoints: int = 0
    finals: int = 0

    def __sub__(self, other: "Pending") -> "Pending":
        return Pending(
            self.metrics - other.metrics,
            self.checkpoints - other.checkpoints,
            self.finals - other.finals,
        )

    def is_empty(self) -> bool:
        """Tell whether nothing waits."""
        return self == Pending()

    def describe(self) -> str:
        """Return '3 epochs of metrics, 1 checkpoint and the final weights' (or 'nothing')."""
        parts = []
        if self.metrics:
            parts.append(f"{self.metrics} epoch{'s' * (self.metrics != 1)} of metrics")
        if self.checkpoints:
            parts.append(f"{self.checkpoints} checkpoint{'s' * (self.checkpoints != 1)}")
        if self.finals:
            parts.append("the final weights")
        if not parts:
            return "nothing"
        return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


class Outbox:
    """A durable queue shared by every session (and process) on this machine."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        # wal_autocheckpoint=0: folding the WAL into the file fsyncs, which would stall the
        # training thread every few hundred writes; the worker calls checkpoint() instead
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "busy_timeout=30000",
            "wal_autocheckpoint=0",
        ):
            self._conn.execute(f"PRAGMA {pragma}")
        self._conn.executescript(SCHEMA)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Bring an outbox written by an older trainhub up to the current schema."""
        columns = {row[1] for row in self._conn.execute("PRAGMA table_info(uploads)")}
        for name in ("size_bytes", "mtime_ns"):
            if name not in columns:
                self._conn.execute(f"ALTER TABLE uploads ADD COLUMN {name} INTEGER")

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the file, on a connection of its own (worker thread)."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()

    def put_metrics(self, server: str, model_id: str, epoch: int, values: dict[str, Any]) -> None:
        """Journal one epoch's metrics, merged into any still-pending values for that epoch."""
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT vals FROM metrics WHERE server=? AND model_id=? AND epoch=?",
                (server, model_id, epoch),
            ).fetchone()
            merged = {**json.loads(row[0]), **values} if row else values
            conn.execute(
                "INSERT INTO metrics (server, model_id, epoch, vals) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (server, model_id, epoch) DO UPDATE SET vals=excluded.vals, "
                "version=version+1",
                (server, model_id, epoch, json.dumps(merged)),
            )

    def put_upload(
        self,
        server: str,
        model_id: str,
        kind: str,
        path: Path,
        *,
        epoch: int,
        is_best: bool = False,
        map_value: float | None = None,
    ) -> None:
        """Journal a checkpoint or final upload; it replaces an older one of the same kind."""
        if kind not in ("checkpoint", "final"):
            raise ValueError(f"kind must be 'checkpoint' or 'final', not {kind!r}")
        try:  # what the file is now; the copy taken later must still match it
            stat: os.stat_result | None = path.stat()
        except FileNotFoundError:
            stat = None  # vanished already: the worker will skip it with a warning
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM uploads WHERE server=? AND model_id=? AND kind=?",
                (server, model_id, kind),
            )
            conn.execute(
                "INSERT INTO uploads (server, model_id, kind, path, epoch, is_best, map, "
                "created_at, size_bytes, mtime_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    server,
                    model_id,
                    kind,
                    str(path),
                    epoch,
                    int(is_best),
                    map_value,
                    time.time(),
                    None if stat is None else stat.st_size,
                    None if stat is None else stat.st_mtime_ns,
                ),
            )

    def pending_metrics(self, server: str, model_id: str, limit: int = 500) -> list[PendingMetrics]:
        """Return up to `limit` pending epochs of one model, oldest epoch first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT epoch, vals, version FROM metrics WHERE server=? AND model_id=? "
                "ORDER BY epoch LIMIT ?",
                (server, model_id, limit),
            ).fetchall()
        return [PendingMetrics(server, model_id, e, json.loads(v), ver) for e, v, ver in rows]

    def ack_metrics(self, sent: list[PendingMetrics]) -> None:
        """Remove epochs the hub accepted, unless they changed after they were read."""
        with self._transaction() as conn:
            conn.executemany(
                "DELETE FROM metrics WHERE server=? AND model_id=? AND epoch=? AND version=?",
                [(m.server, m.model_id, m.epoch, m.version) for m in sent],
            )

    def next_upload(self, server: str, model_id: str) -> PendingUpload | None:
        """Return the pending upload to send next: a checkpoint before the final weights."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, server, model_id, kind, path, epoch, is_best, map, attempts, "
                "upload_url, size_bytes, mtime_ns FROM uploads WHERE server=? AND model_id=? "
                "ORDER BY kind='final', id LIMIT 1",
                (server, model_id),
            ).fetchone()
        if row is None:
            return None
        return PendingUpload(
            row[0],
            row[1],
            row[2],
            row[3],
            Path(row[4]),
            row[5],
            bool(row[6]),
            row[7],
            row[8],
            row[9],
            row[10],
            row[11],
        )

    def ack_upload(self, upload: PendingUpload) -> None:
        """Remove an upload the hub accepted (a newer one queued meanwhile stays)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM uploads WHERE id=?", (upload.id,))

    def note_attempt(
        self, upload: PendingUpload, error: str | None, upload_url: str | None = None
    ) -> None:
        """Record a failed attempt (and a resumable upload's URL, to resume from next time)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE uploads SET attempts=attempts+1, last_error=?, "
                "upload_url=COALESCE(?, upload_url) WHERE id=?",
                (error, upload_url, upload.id),
            )

    def discard_uploads(self, server: str, model_id: str, kind: str) -> None:
        """Forget pending uploads of one kind (a checkpoint is moot once the final weights are)."""
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM uploads WHERE server=? AND model_id=? AND kind=?",
                (server, model_id, kind),
            )

    def set_upload_url(self, upload: PendingUpload, upload_url: str) -> None:
        """Remember the resumable upload that carries this item, to resume it after a crash."""
        with self._transaction() as conn:
            conn.execute("UPDATE uploads SET upload_url=? WHERE id=?", (upload_url, upload.id))

    def drop_upload(self, upload: PendingUpload, reason: str) -> None:
        """Give up on an upload that can never succeed (its file is gone, the model deleted)."""
        logger.warning("dropping %s of model %s: %s", upload.kind, upload.model_id, reason)
        self.ack_upload(upload)

    def pending_models(self) -> list[tuple[str, str]]:
        """Return every (server, model id) with something left to send."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT server, model_id FROM metrics UNION SELECT server, model_id FROM uploads"
            ).fetchall()
        return [(server, model_id) for server, model_id in rows]

    def pending(self, server: str, model_id: str) -> Pending:
        """Return what of one model waits: epochs of metrics, checkpoints, final weights."""
        with self._lock:
            metrics = self._conn.execute(
                "SELECT COUNT(*) FROM metrics WHERE server=? AND model_id=?", (server, model_id)
            ).fetchone()[0]
            kinds = dict(
                self._conn.execute(
                    "SELECT kind, COUNT(*) FROM uploads WHERE server=? AND model_id=? "
                    "GROUP BY kind",
                    (server, model_id),
                ).fetchall()
            )
        return Pending(int(metrics), int(kinds.get("checkpoint", 0)), int(kinds.get("final", 0)))

    def counts(self, server: str, model_id: str) -> tuple[int, int]:
        """Return (pending metrics epochs, pending uploads) of one model."""
        with self._lock:
            metrics = self._conn.execute(
                "SELECT COUNT(*) FROM metrics WHERE server=? AND model_id=?", (server, model_id)
            ).fetchone()[0]
            uploads = self._conn.execute(
                "SELECT COUNT(*) FROM uploads WHERE server=? AND model_id=?", (server, model_id)
            ).fetchone()[0]
        return int(metrics), int(uploads)
