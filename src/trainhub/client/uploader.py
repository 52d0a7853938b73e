"""The upload worker: one background thread per session that drains the outbox.

It sends journaled metrics (at most one request per `rate_limits["metrics"]` seconds, every
pending epoch at once), checkpoints (the first at once, then at most one per
`rate_limits["ckpt"]`), the final weights (after every metric), and heartbeats every
`rate_limits["heartbeat"]` seconds, from the moment training begins (the first journaled item)
or one interval after the session opened, so a session opened and closed without training leaves
its model `new`. The training thread never waits on it except in `flush`. When the hub is down it
backs off with jitter and keeps everything in the outbox, saying so once (not at every retry) and
once more when the hub answers again; an answer that can never succeed is reported once, with the
server's message.
"""

import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from trainhub.client.api import HeartbeatState, HubClient
from trainhub.client.errors import (
    ApiError,
    Conflict,
    NotAuthenticated,
    NotFound,
    TrainhubError,
)
from trainhub.client.outbox import Outbox, PendingUpload
from trainhub.client.retry import backoff_delay_s, is_retryable_status
from trainhub.client.transfer import Progress, file_sha256

logger = logging.getLogger(__name__)

STAGING_ATTEMPTS = 3
CHECKPOINT_EVERY_S = 10.0  # how often the worker folds the outbox's WAL into its file
FINAL_BEAT_TIMEOUT_S = 5.0
MIN_BEAT_TIMEOUT_S = 0.5
RESUMABLE_THRESHOLD_BYTES = 32 * 1024 * 1024
ProgressFactory = Callable[[int, str], Progress | None]


def described(upload: PendingUpload) -> str:
    """Return 'the checkpoint of epoch 3' for a checkpoint of epoch index 2.

    Epochs are counted from 1 in what people read, as trainers print them; the outbox and the
    wire keep the 0-based index the training loop passed.
    """
    what = "the final weights" if upload.kind == "final" else "the checkpoint"
    return f"{what} of epoch {upload.epoch + 1}"


class FileChangedError(OSError):
    """The file is no longer the version that was queued."""


def stage_file(source: Path, target: Path, expected: tuple[int, int] | None = None) -> str | None:
    """Copy `source` to `target` and return its sha256; None when it changed while copied.

    Trainers overwrite last.pt in place each epoch, so the copy, not the live file, is uploaded,
    and only when it is the version that was queued (`expected`: size and mtime in ns) and did not
    change while copied; FileChangedError when it is another version. The copy is written under a
    temporary name and renamed, so a copy cut short by a crash is never taken for a whole one.
    FileNotFoundError when the file is gone.
    """
    before = source.stat()
    if expected is not None and (before.st_size, before.st_mtime_ns) != expected:
        raise FileChangedError(f"{source} was rewritten after it was queued")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with source.open("rb") as src, partial.open("wb") as dst:
        while chunk := src.read(1024 * 1024):
            dst.write(chunk)
            digest.update(chunk)
    after = source.stat()
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns):
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, target)
    return digest.hexdigest()


class Uploader:
    """Drains one model's part of the outbox on a background thread."""

    def __init__(
        self,
        client: HubClient,
        outbox: Outbox,
        model_id: str,
        *,
        rate_limits: dict[str, float],
        agent: str,
        heartbeats: bool = True,
        progress: ProgressFactory | None = None,
        resumable_threshold_bytes: int = RESUMABLE_THRESHOLD_BYTES,
        clock: Callable[[], float] = time.monotonic,
        offline: bool = False,
    ) -> None:
        # the worker backs off on its own; a retry inside a request would only delay heartbeats
        self.client = client.with_retries(0)
        self.outbox, self.model_id = outbox, model_id
        self.server = client.url
        self.rate_limits = rate_limits
        self.agent = agent
        self.agent_id: str | None = None
        self.heartbeats = heartbeats
        self.progress = progress
        self.resumable_threshold_bytes = resumable_threshold_bytes
        self.clock = clock
        self.staging = outbox.path.parent / "staging"
        self.paused: str | None = None  # why sending stopped for good in this session
        self.offline = offline  # the last request found no hub (said once, until it answers)
        self.reached = not offline  # the hub answered this session at least once
        self._opened = clock()
        self._training = False  # something was journaled: heartbeats are due from now on
        self._cond = threading.Condition()
        self._stop = self._flushing = False
        self._failures = 0
        self._retry_at = 0.0
        self._last_metrics = self._last_beat = float("-inf")
        self._last_checkpoint: float | None = None
        self._last_wal_checkpoint = clock()
        self.lost: list[str] = []  # uploads the hub refused for good in this session
        self._staging_misses: dict[int, int] = {}
        self._rng = random.Random()
        self._thread = threading.Thread(
            target=self._run, name=f"trainhub-upload-{model_id}", daemon=True
        )

    # --- called from the training thread ----------------------------------------------------

    def start(self) -> None:
        """Start the worker thread (the first heartbeat goes out at once)."""
        self._thread.start()

    def notify(self) -> None:
        """Tell the worker that something new is in the outbox."""
        with self._cond:
            self._cond.notify()

    def note_training(self) -> None:
        """Tell the worker that training has begun (heartbeats start now) and that the outbox
        has something new."""
        with self._cond:
            self._training = True
            self._cond.notify()

    def is_drained(self) -> bool:
        """Tell whether nothing of this model is left in the outbox."""
        return self.outbox.counts(self.server, self.model_id) == (0, 0)

    def flush(self, timeout_s: float) -> bool:
        """Send everything now, ignoring rate limits; wait at most `timeout_s`. True if drained."""
        deadline = self.clock() + timeout_s
        with self._cond:
            self._flushing, self._retry_at = True, 0.0
            self._cond.notify()
            while not self._is_done_flushing() and self._thread.is_alive():
                remaining = deadline - self.clock()
                if remaining <= 0:
                    break
                self._cond.wait(timeout=min(remaining, 0.5))
            self._flushing = False
        return self.is_drained()

    def _is_done_flushing(self) -> bool:
        return self.paused is not None or self.is_drained()

    def stop(self, state: HeartbeatState = "finished", timeout_s: float = 10.0) -> None:
        """Stop the worker and send a last heartbeat saying how the run ended, in `timeout_s`.

        The beat gets what is left of `timeout_s` (at most FINAL_BEAT_TIMEOUT_S, at least
        MIN_BEAT_TIMEOUT_S), so a hub that does not answer cannot stretch the stop much.
        """
        deadline = self.clock() + timeout_s
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)
        # a session that neither trained nor beat has nothing to report (its model stays new)
        if self.heartbeats and self.paused is None and (self._training or self.agent_id):
            beat_s = min(FINAL_BEAT_TIMEOUT_S, max(MIN_BEAT_TIMEOUT_S, deadline - self.clock()))
            try:
                self.client.with_retries(0, beat_s).heartbeat(
                    self.model_id,
                    agent=self.agent,
                    agent_id=self.agent_id,
                    interval_s=self.rate_limits["heartbeat"],
                    state=state,
                )
            except TrainhubError as exc:
                # offline, the session's own warning already said what is kept for later
                log = logger.debug if self.offline else logger.warning
                log("trainhub: the last heartbeat was not delivered: %s", exc)

    # --- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stop:
                    return
            try:
                self._tick()
            except Exception:  # the worker must outlive any bug in one tick
                logger.exception("trainhub: upload worker error; will retry")
                self._back_off()
            with self._cond:
                self._cond.notify_all()
                if not self._stop:
                    self._cond.wait(timeout=self._sleep_s())

    def _sleep_s(self) -> float:
        now = self.clock()
        waits = [CHECKPOINT_EVERY_S]
        if self.heartbeats:
            waits.append(self._next_beat_at() - now)
        if not self.is_drained():
            waits.append(self._last_metrics + self.rate_limits["metrics"] - now)
            waits.append(1.0 if self._flushing else 5.0)
        if self._retry_at > now:
            waits = [max(w, self._retry_at - now) for w in waits]
        return max(0.05, min(waits))

    def _tick(self) -> None:
        now = self.clock()
        if self.paused is not None or now < self._retry_at:
            return
        if self.heartbeats and now >= self._next_beat_at():
            self._guard(self._beat)
        if self._flushing or now - self._last_metrics >= self.rate_limits["metrics"]:
            self._guard(self._send_metrics)
        self._guard(self._send_upload)
        if now - self._last_wal_checkpoint >= CHECKPOINT_EVERY_S:
            self._last_wal_checkpoint = now
            self.outbox.checkpoint()

    def _next_beat_at(self) -> float:
        """Return when the next heartbeat is due (before training: one interval after opening)."""
        since = self._last_beat if self._training else max(self._last_beat, self._opened)
        return since + self.rate_limits["heartbeat"]

    def _guard(self, step: Callable[[], bool]) -> None:
        """Run one step; back off, pause or report as its outcome says."""
        if self.paused is not None or self.clock() < self._retry_at:
            return
        try:
            if step():
                self._answered()
            self._failures = 0
        except ApiError as exc:
            if is_retryable_status(exc.status):  # perhaps a proxy answering for a hub that is down
                self._back_off(getattr(exc, "retry_after_s", None))
            else:
                self._answered()
                self._refused(exc)
        except TrainhubError as exc:
            self._unreachable(exc)
            self._back_off()

    def _answered(self) -> None:
        """Note that the hub answered; say so once when it had been unreachable."""
        self.reached = True
        if self.offline:
            self.offline = False
            logger.info("trainhub: the hub at %s answers again; sending what was kept", self.server)

    def _unreachable(self, exc: TrainhubError) -> None:
        """Note that the hub did not answer: a warning the first time, then debug lines only."""
        if self.offline:
            logger.debug("trainhub: the hub is still unreachable: %s", exc)
            return
        self.offline = True
        logger.warning(
            "trainhub: the hub does not answer; keeping data on disk and retrying in the "
            "background: %s",
            exc,
        )

    def _back_off(self, retry_after_s: float | None = None) -> None:
        self._failures += 1
        cap_s = 5.0 if self._flushing else 60.0  # the end of training waits: retry often
        delay = backoff_delay_s(self._failures, base_s=1.0, cap_s=cap_s, rng=self._rng)
        self._retry_at = self.clock() + max(delay, retry_after_s or 0.0)

    def _refused(self, exc: ApiError) -> None:
        if isinstance(exc, NotAuthenticated | NotFound) or exc.status == 403:
            self.paused = f"the hub refused this session: {exc.message}"
            logger.error(
                "trainhub: %s; data stays in the outbox (send later with `trainhub sync`)",
                self.paused,
            )
        else:
            logger.error("trainhub: the hub refused an upload: %s", exc)
            raise exc

    def _beat(self) -> bool:
        self._last_beat = self.clock()
        self.agent_id = self.client.heartbeat(
            self.model_id,
            agent=self.agent,
            agent_id=self.agent_id,
            interval_s=self.rate_limits["heartbeat"],
        )
        return True

    def _send_metrics(self) -> bool:
        """Send every pending epoch in one request; True when the hub took them."""
        pending = self.outbox.pending_metrics(self.server, self.model_id)
        if not pending:
            return False
        self._last_metrics = self.clock()
        try:
            self.client.upload_metrics(self.model_id, {m.epoch: m.values for m in pending})
        except ApiError as exc:
            if exc.status in (400, 413, 422):  # these epochs can never be accepted
                self.outbox.ack_metrics(pending)
            raise
        self.outbox.ack_metrics(pending)
        logger.debug("trainhub: sent %d epochs of metrics", len(pending))
        return True

    def _checkpoint_due(self) -> bool:
        if self._flushing or self._last_checkpoint is None:
            return True
        return self.clock() - self._last_checkpoint >= self.rate_limits["ckpt"]

    def _send_upload(self) -> bool:
        """Send the next pending upload if it is due; True when the hub answered it."""
        upload = self.outbox.next_upload(self.server, self.model_id)
        if upload is None:
            return False
        if upload.kind == "checkpoint" and not self._checkpoint_due():
            return False
        if upload.kind == "final" and self.outbox.counts(self.server, self.model_id)[0]:
            return False  # every metric goes before the final weights
        stage = self._stage(upload)
        if stage is None:
            return False
        staged, sha256 = stage
        try:
            self._upload(upload, staged, sha256)
        except ApiError as exc:
            self.outbox.note_attempt(upload, str(exc))
            if is_retryable_status(exc.status) or exc.status in (401, 403, 404):
                raise  # _guard backs off, or pauses the session
            self._upload_refused(upload, staged, exc)
            return True
        except TrainhubError as exc:
            self.outbox.note_attempt(upload, str(exc))
            raise
        except (OSError, ValueError) as exc:  # the staged copy is unreadable or empty
            self._drop(upload, staged, f"{upload.path} cannot be sent: {exc}")
            return False
        self._drop(upload, staged, None)
        if upload.kind == "checkpoint":
            self._last_checkpoint = self.clock()
        return True

    def _upload_refused(self, upload: PendingUpload, staged: Path, exc: ApiError) -> None:
        """Decide what a refusal means for an upload; only a hopeless one leaves the outbox."""
        if exc.status in (400, 409):
            # 409: a resumable upload out of step with the hub (HEAD puts it right next time);
            # 400: the hub got other bytes than the sha256 says: copy and send them again
            if exc.status == 400:
                staged.unlink(missing_ok=True)
            logger.warning("trainhub: %s upload will be tried again: %s", upload.kind, exc)
            self._back_off()
            return
        logger.error("trainhub: the hub refused %s for good: %s", described(upload), exc)
        self.lost.append(f"{described(upload)}: {exc.message}")
        self._drop(upload, staged, str(exc))

    def _stage(self, upload: PendingUpload) -> tuple[Path, str] | None:
        staged = self.staging / f"{upload.id}{upload.path.suffix or '.pt'}"
        if staged.exists():  # renamed into place only when complete: its bytes are final
            return staged, file_sha256(staged)
        queued = (
            None
            if upload.size_bytes is None or upload.mtime_ns is None
            else (upload.size_bytes, upload.mtime_ns)
        )
        try:
            sha256 = stage_file(
                upload.path, staged, queued if upload.kind == "checkpoint" else None
            )
            if sha256 is not None:
                return staged, sha256
        except FileNotFoundError:
            self._drop(upload, staged, f"{upload.path} disappeared before it could be sent")
            return None
        except FileChangedError:  # superseded, not lost: no warning
            logger.info(
                "trainhub: not sending %s: %s was rewritten after it was queued; the newer "
                "version goes with the next checkpoint",
                described(upload),
                upload.path,
            )
            self._drop(upload, staged, None)
            return None
        misses = self._staging_misses.get(upload.id, 0) + 1
        self._staging_misses[upload.id] = misses
        if misses >= STAGING_ATTEMPTS:
            self._drop(upload, staged, f"{upload.path} kept changing while it was copied")
        return None

    def _drop(self, upload: PendingUpload, staged: Path, reason: str | None) -> None:
        if reason is None:
            self.outbox.ack_upload(upload)
        else:
            self.outbox.drop_upload(upload, reason)
        staged.unlink(missing_ok=True)

    def _upload(self, upload: PendingUpload, staged: Path, sha256: str) -> None:
        final = upload.kind == "final"
        size = os.path.getsize(staged)
        progress = self.progress(size, upload.kind) if self.progress and final else None
        if size >= self.resumable_threshold_bytes:
            self._upload_resumable(upload, staged, sha256, size, progress)
        else:
            self.client.upload_weights(
                self.model_id,
                staged,
                epoch=upload.epoch,
                final=final,
                is_best=upload.is_best,
                map=upload.map or 0.0,
                sha256=sha256,
                progress=progress,
            )
        logger.info("trainhub: uploaded %s (%d bytes)", described(upload), size)

    def _upload_resumable(
        self, upload: PendingUpload, staged: Path, sha256: str, size: int, progress: Progress | None
    ) -> None:
        """Send through tus, resuming where the hub stopped (even from an earlier process)."""
        url, offset = upload.upload_url, 0
        if url is not None:
            try:
                offset = self.client.upload_offset(url)
            except NotFound:  # expired or finished elsewhere: start over
                url = None
        if url is None:
            try:
                url = self.client.create_upload(
                    self.model_id,
                    size_bytes=size,
                    sha256=sha256,
                    epoch=upload.epoch,
                    final=upload.kind == "final",
                    is_best=upload.is_best,
                    map=upload.map or 0.0,
                )
            except Conflict:  # no free resumable slot on the hub: send it in one request
                self.client.upload_weights(
                    self.model_id,
                    staged,
                    epoch=upload.epoch,
                    final=upload.kind == "final",
                    is_best=upload.is_best,
                    map=upload.map or 0.0,
                    sha256=sha256,
                    progress=progress,
                )
                return
            self.outbox.set_upload_url(upload, url)
        if progress is not None and offset:
            progress(offset)
        if offset < size:
            self.client.append_upload(url, staged, offset, progress=progress)
