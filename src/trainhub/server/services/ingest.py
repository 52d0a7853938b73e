"""Metrics uploads by group commit: concurrent uploads share one transaction.

A trainer's `POST /v1/models/{id}` hands its epochs to the `MetricsWriter` of its process and
waits; the writer takes everything waiting, writes it in one transaction in a worker thread
(db/ingest.py), and answers each upload once that transaction committed. So an answered epoch is
stored exactly once (a retry merges into it), a busy hub commits many uploads at the cost of one,
and the event loop hands work to a thread once per batch, not once per request.

Beyond capacity it refuses rather than queues: with `max_pending` epochs already waiting, an
upload gets 503 with Retry-After at once, and an upload whose batch is not committed within
`timeout_s` (a stalled database) gets 503 too; the clients retry both, and a retry of an epoch
that was in fact stored only merges into it.
"""

import asyncio
import logging
from dataclasses import dataclass, field

from anyio import to_thread

from trainhub.protocol.ids import is_id
from trainhub.protocol.metrics import EpochMetrics
from trainhub.server.db import changes, ingest
from trainhub.server.db.engine import Database
from trainhub.server.db.metrics import main_metric
from trainhub.server.db.owned import KIND
from trainhub.server.db.tables import ModelRow, utcnow
from trainhub.server.errors import (
    ForbiddenError,
    HubError,
    NotFoundError,
    ServiceUnavailableError,
)

logger = logging.getLogger(__name__)
MAX_BATCH_EPOCHS = 2_000
RETRY_AFTER_S = "1"


@dataclass
class _Upload:
    model_id: str
    user_id: str
    epochs: dict[int, EpochMetrics]
    done: "asyncio.Future[list[int]]" = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class MetricsWriter:
    """Write metrics uploads of one process in batches; one batch at a time."""

    def __init__(self, db: Database, *, max_pending: int = 4_000, timeout_s: float = 1.0) -> None:
        self._db = db
        self._max_pending = max_pending
        self._timeout_s = timeout_s
        self._waiting: list[_Upload] = []
        self._pending_epochs = 0
        self._writing: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Return how many epochs wait to be written."""
        return self._pending_epochs

    async def submit(
        self, model_id: str, user_id: str, epochs: dict[int, EpochMetrics]
    ) -> list[int]:
        """Store `epochs` of a model for its owner `user_id`; return them once committed."""
        if not is_id(model_id):  # not even well-formed (a NUL would reach PostgreSQL): 404
            raise NotFoundError(KIND[ModelRow], model_id)
        if self._pending_epochs + len(epochs) > self._max_pending:
            raise ServiceUnavailableError(
                "the hub is writing as fast as it can; send these metrics again in a second",
                headers={"Retry-After": RETRY_AFTER_S},
            )
        upload = _Upload(model_id, user_id, epochs)
        self._waiting.append(upload)
        self._pending_epochs += len(epochs)
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._drain())
        try:
            return await asyncio.wait_for(asyncio.shield(upload.done), self._timeout_s)
        except TimeoutError as exc:
            raise ServiceUnavailableError(
                f"the database did not store these metrics within {self._timeout_s:.0f} s; "
                "send them again",
                headers={"Retry-After": RETRY_AFTER_S},
            ) from exc

    def _take_batch(self) -> tuple[list[_Upload], int]:
        """Take the oldest waiting uploads, up to MAX_BATCH_EPOCHS epochs (at least one upload)."""
        batch: list[_Upload] = []
        size = 0
        while self._waiting:
            upcoming = len(self._waiting[0].epochs)
            if batch and size + upcoming > MAX_BATCH_EPOCHS:
                break
            batch.append(self._waiting.pop(0))
            size += upcoming
        return batch, size

    async def _drain(self) -> None:
        while self._waiting:
            batch, size = self._take_batch()
            try:
                outcomes = await to_thread.run_sync(self._write, batch)
            except Exception as exc:  # the whole transaction failed: every upload in it did
                logger.warning("a batch of %d metrics uploads failed: %s", len(batch), exc)
                outcomes = [exc] * len(batch)
            finally:
                self._pending_epochs -= size
            for upload, outcome in zip(batch, outcomes, strict=True):
                if upload.done.done():
                    continue
                if outcome is None:
                    upload.done.set_result(sorted(upload.epochs))
                else:
                    upload.done.set_exception(outcome)

    def _write(self, batch: list[_Upload]) -> list[BaseException | None]:
        """Write the uploads that may be written in one transaction; return each one's outcome."""
        with self._db.begin() as conn:
            models = ingest.models_by_id(conn, {u.model_id for u in batch}, lock=True)
            # after the lock: a model's metrics are written in the order of their times, which
            # the chart's version relies on (docs/decisions/0028-chart-columns-catch-up.md)
            now = utcnow()
            outcomes: list[BaseException | None] = []
            epochs: dict[tuple[int, int], EpochMetrics] = {}
            newest: dict[int, int] = {}
            for upload in batch:
                refusal = _refusal(models.get(upload.model_id), upload)
                outcomes.append(refusal)
                if refusal is not None:
                    continue
                seq = models[upload.model_id].seq
                for epoch, values in upload.epochs.items():
                    merged = epochs.get((seq, epoch))
                    epochs[(seq, epoch)] = values if merged is None else {**merged, **values}
                newest[seq] = max(newest.get(seq, -1), max(upload.epochs))
            ingest.upsert_epochs(conn, epochs, now)
            best: dict[int, float] = {}
            for (seq, _), values in epochs.items():
                value = main_metric([values])
                if value is not None and (seq not in best or value > best[seq]):
                    best[seq] = value
            ingest.note_training(conn, newest, best, now)
            written = {
                u.model_id for u, refusal in zip(batch, outcomes, strict=True) if refusal is None
            }
            changes.note_many(conn, [(m, models[m].owner_id) for m in sorted(written)])
        return outcomes


def _refusal(model: ingest.ModelAccess | None, upload: _Upload) -> HubError | None:
    """Return why `upload` may not be written (as owned.load would say), None when it may."""
    kind = KIND[ModelRow]
    if model is None or model.deleted or (model.owner_id != upload.user_id and not model.public):
        return NotFoundError(kind, upload.model_id)
    if model.owner_id != upload.user_id:
        return ForbiddenError(
            f"{kind} {upload.model_id!r} is public but belongs to another user; it is read-only "
            "for you"
        )
    return None
