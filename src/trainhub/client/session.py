"""HUBTrainingSession: what a training loop holds (the public surface of the stock HUB session).

It keeps the constructor identifiers, methods and attributes of ultralytics' own HUBTrainingSession
and fixes its defects (docs/protocol/hub-v1.md §11): every metrics epoch and the final weights are
journaled in the durable outbox before anything is sent, all network work runs on one background
thread, the end of training flushes everything (metrics first, then the weights) with a real
progress bar, failures report the server's message, heartbeats stop with the session, and no
signal handler is touched. A hub that is down when a session for an existing model opens does not
stop training: the session starts offline and sends everything once the hub answers (see
docs/decisions/0013-offline-session-start.md).
"""

import atexit
import json
import logging
import os
import platform
import shutil
import socket
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import platformdirs
from tqdm import tqdm

from trainhub import __version__
from trainhub.client.api import HeartbeatState, HubClient
from trainhub.client.credentials import resolve
from trainhub.client.errors import HubUnreachable, NotFound, TrainhubError
from trainhub.client.outbox import Outbox
from trainhub.client.retry import failure_message, is_retryable_status
from trainhub.client.transfer import Progress
from trainhub.client.uploader import RESUMABLE_THRESHOLD_BYTES, Uploader
from trainhub.protocol.identifiers import parse_identifier
from trainhub.protocol.records import ModelRecord

logger = logging.getLogger(__name__)

AGENT_NAME = f"trainhub-{__version__}-python-{platform.python_version()}-{socket.gethostname()}"
FLUSH_TIMEOUT_S = 900.0
ATTACH_RETRIES, ATTACH_TIMEOUT_S = 1, 10.0
EXIT_FLUSH_TIMEOUT_S = 5.0  # what unfinished runs may add to the exit of their process
OFFLINE_FLUSH_TIMEOUT_S = 10.0  # the final wait of a session that never reached its hub
STOP_MIN_S = 0.5  # for the upload thread to stop and the last beat, once the budget is spent


def default_weights_dir() -> Path:
    """Return where downloaded weights go: the user's cache folder (~/.cache/trainhub/weights)."""
    return platformdirs.user_cache_path("trainhub") / "weights"


class HUBTrainingSession:
    """A training run's link to its model on a hub: load or create it, send metrics and weights.

    `identifier` is `<hub>/models/<id>` (optionally `?api_key=<key>`), `<key>_<id>`, a bare model
    id, or a local `*.pt`/`*.yaml` file (then `create_model` makes a new model). The hub URL and
    key come from the identifier, then TRAINHUB_URL/TRAINHUB_API_KEY (or the HUB variables), then
    the file `trainhub login` writes. Raises ValueError for a bad identifier or a missing model
    and TrainhubError when the hub cannot be used; `create_session` returns None instead. A hub
    that does not answer is no such error for an existing model: the session then starts offline
    (`offline` is True, one warning) and journals everything for later.
    """

    def __init__(
        self,
        identifier: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        outbox: Outbox | None = None,
        weights_dir: Path | str | None = None,
        flush_timeout_s: float = FLUSH_TIMEOUT_S,
        http: httpx.Client | None = None,
        heartbeats: bool = True,
        progress: bool = True,
        resumable_threshold_bytes: int = RESUMABLE_THRESHOLD_BYTES,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate_limits: dict[str, float] = {"metrics": 3.0, "ckpt": 900.0, "heartbeat": 30.0}
        self.metrics_queue: dict[int, str | dict[str, Any]] = {}
        self.metrics_upload_failed_queue: dict[int, str | dict[str, Any]] = {}
        self.timers: dict[str, float] = {}
        self.model: dict[str, Any] | None = None
        self.model_id: str | None = None
        self.model_url: str | None = None
        self.model_file: str | None = None
        self.train_args: dict[str, Any] | None = None
        self.offline = False  # started without the hub: nothing was loaded from it
        self._journaled = False  # the loop gave this session metrics or weights
        parsed = parse_identifier(identifier)
        self.filename = parsed.filename
        credentials = resolve(url or parsed.server, api_key or parsed.api_key)
        self.client = HubClient(credentials.url, credentials.api_key, http=http)
        # an open run stays in _open_sessions until finish(), so this only closes what is done
        weakref.finalize(self, self.client.close).atexit = False
        # attaching must not hold up the start of training for long when the hub is down; when
        # it fails, one warning says so (offline start, or create_session's), so retries are INFO
        self._attaching = self.client.with_retries(
            ATTACH_RETRIES, ATTACH_TIMEOUT_S, retry_log_level=logging.INFO
        )
        self.outbox = outbox or Outbox()
        self.weights_dir = default_weights_dir() if weights_dir is None else Path(weights_dir)
        self.flush_timeout_s = flush_timeout_s
        self._heartbeats, self._progress = heartbeats, progress
        self._resumable_threshold_bytes = resumable_threshold_bytes
        self._sleep = sleep
        self._uploader: Uploader | None = None
        self._lock = threading.Lock()
        if parsed.model_id:
            self.load_model(parsed.model_id)

    # --- creating and loading -----------------------------------------------------------------

    @classmethod
    def create_session(
        cls,
        identifier: str,
        args: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        **options: Any,
    ) -> "HUBTrainingSession | None":
        """Return a session for `identifier` (creating a model from `args` for a local file,
        called `name` when given), or None with a warning when the hub cannot be used: training
        then goes on without it."""
        try:
            session = cls(identifier, **options)
            if args is not None and session.model_id is None:
                session.create_model(args, name=name)
            return session if session.model_id else None
        except (TrainhubError, ValueError, OSError) as exc:
            logger.warning("trainhub: training goes on without the hub: %s", exc)
            return None

    def load_model(self, model_id: str) -> None:
        """Load a model: trained -> its best weights; resumable -> its last checkpoint; else
        the parent weights or the architecture, with the hub's training arguments. When the hub
        does not answer, start offline instead."""
        try:
            record = self._attaching.get_model(model_id)
        except NotFound as exc:
            raise ValueError(
                f"model {model_id!r} does not exist on {self.client.url} (or is not "
                "yours); check the URL, or create it in the dashboard"
            ) from exc
        except HubUnreachable as exc:
            self._start_offline(model_id, exc)
            return
        self._attach(record)
        if record.status == "trained" and record.weights:
            logger.info("trainhub: loading trained model %s", self.model_url)
            self.model_file = str(
                self._download(record.weights, self.weights_dir / "hub" / model_id)
            )
            return
        if record.has_last_weights and record.resume:
            self.train_args = {"data": record.data, "resume": True}
            self.model_file = str(self._download(record.resume, self.weights_dir))
        else:
            self.train_args = dict(record.train_args)
            self.model_file = self._starting_weights(record)
        self._start()

    def _start_offline(self, model_id: str, exc: HubUnreachable) -> None:
        """Train without the hub: everything is journaled and sent once the hub answers."""
        self.offline = True
        self.model_id = model_id
        self.model_url = f"{self.client.url}/models/{model_id}"
        logger.warning(
            "trainhub: the hub at %s does not answer, so this run starts offline: its metrics "
            "and weights are kept in %s and sent when the hub is back (or by `trainhub sync`); "
            "the hub's weights and training arguments are not loaded (%s)",
            self.client.url,
            self.outbox.path,
            exc,
        )
        self._start()

    def _starting_weights(self, record: ModelRecord) -> str | None:
        if record.is_pretrained and record.weights:
            if record.weights.startswith(("http://", "https://")):
                return str(self._download(record.weights, self.weights_dir))
            return record.weights
        return record.cfg

    def create_model(self, model_args: Mapping[str, Any], *, name: str | None = None) -> None:
        """Create a model on the hub for this run from the trainer's arguments.

        The model is named after the local file (`yolo11n.pt`), as ultralytics does, or `name`
        for models that are not YOLO files (a LightningModule, a Transformers model).
        """
        name = name or self.filename or "model"
        config = {
            "batchSize": model_args.get("batch", -1),
            "epochs": model_args.get("epochs", 300),
            "imageSize": model_args.get("imgsz", 640),
            "patience": model_args.get("patience", 100),
        }
        for key, arg in (("device", "device"), ("cache", "cache")):
            if model_args.get(arg) not in (None, ""):
                config[key] = str(model_args[arg])
        lineage: dict[str, Any] = {
            "architecture": {"name": name.removesuffix(".pt").removesuffix(".yaml")},
            "parent": {},
        }
        if name.endswith(".pt"):
            lineage["parent"]["name"] = Path(name).name
        payload = {
            "meta": {"name": Path(name).name},
            "config": config,
            "lineage": lineage,
            "dataset": {"name": model_args.get("data")},
        }
        try:
            model_id = self._attaching.create_model(payload)
            record = self._attaching.get_model(model_id)
        except HubUnreachable as exc:
            raise HubUnreachable(
                f"cannot create a model for this run: {exc}. A new model needs the hub; to "
                "train while it is down, pass the URL of a model created on it"
            ) from exc
        self._attach(record)
        self._start()

    def _attach(self, record: ModelRecord) -> None:
        self.model = record.model_dump()
        self.model_id = record.id
        self.model_url = f"{self.client.url}/models/{record.id}"

    def _download(self, url: str, folder: Path) -> Path:
        """Download a weights file once: names are unique per version, so a cached copy is it."""
        target = folder / url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            self.client.download(url, target)
        return target

    def _start(self) -> None:
        assert self.model_id is not None
        self._uploader = Uploader(
            self.client,
            self.outbox,
            self.model_id,
            rate_limits=self.rate_limits,
            agent=AGENT_NAME,
            heartbeats=self._heartbeats,
            progress=self._progress_bar if self._progress else None,
            resumable_threshold_bytes=self._resumable_threshold_bytes,
            offline=self.offline,
        )
        self._uploader.start()
        self._pid = os.getpid()  # the process whose upload thread serves this session
        _register_for_exit(self)
        logger.info("trainhub: view model at %s", self.model_url)

    # --- what the training loop calls -------------------------------------------------------

    def upload_metrics(self) -> None:
        """Journal every epoch in `metrics_queue` (and failed ones); send them in the background."""
        if self.model_id is None:
            return
        with self._lock:
            queued = {**self.metrics_upload_failed_queue, **self.metrics_queue}
            self.metrics_queue, self.metrics_upload_failed_queue = {}, {}
        for epoch, values in queued.items():
            parsed = json.loads(values) if isinstance(values, str) else dict(values)
            self.outbox.put_metrics(self.client.url, self.model_id, int(epoch), parsed)
        if queued:
            self._note_training()

    def _note_training(self) -> None:
        """Remember that the loop has begun; wake the upload thread (heartbeats start now)."""
        self._journaled = True
        uploader = self._uploader
        if uploader is not None:
            uploader.note_training()

    def upload_model(
        self,
        epoch: int,
        weights: str | Path,
        is_best: bool = False,
        map: float = 0.0,
        final: bool = False,
    ) -> None:
        """Queue a checkpoint, or (final=True) flush everything and upload the final weights.

        A missing final best.pt falls back to a copy of last.pt, as the stock client does.
        """
        if self.model_id is None:
            return
        path = Path(weights)
        if not path.is_file():
            last = path.with_name(f"last{path.suffix}")
            if not (final and last.is_file()):
                logger.warning("trainhub: not uploading %s: the file does not exist", path)
                return
            logger.warning("trainhub: %s not found; uploading a copy of %s instead", path, last)
            shutil.copy(last, path)
        kind = "final" if final else "checkpoint"
        if final:  # the final weights supersede any checkpoint still waiting
            self.outbox.discard_uploads(self.client.url, self.model_id, "checkpoint")
        self.outbox.put_upload(
            self.client.url,
            self.model_id,
            kind,
            path.resolve(),
            epoch=epoch,
            is_best=is_best,
            map_value=map,
        )
        self._note_training()
        if final:
            self.upload_metrics()
            self.finish()

    def finish(self, state: HeartbeatState = "finished", timeout_s: float | None = None) -> bool:
        """Send everything left (waiting at most the flush timeout), beat once more, stop.

        Return True when nothing is left; otherwise what is left stays on disk for the next
        session or `trainhub sync`.
        """
        self.upload_metrics()
        with self._lock:  # the exit hook may race a finish() on another thread
            uploader, self._uploader = self._uploader, None
        _forget_at_exit(self)
        if uploader is None:
            self.client.close()
            return True
        budget_s = self.flush_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget_s
        drained = self._flush(uploader, budget_s) and not uploader.lost
        uploader.stop(state, timeout_s=max(STOP_MIN_S, deadline - time.monotonic()))
        self.client.close()
        for lost in uploader.lost:
            logger.error("trainhub: not on the hub and not kept: %s", lost)
        if not drained:
            left = self.outbox.pending(self.client.url, uploader.model_id)
            logger.warning(
                "trainhub: kept on disk for the next session or `trainhub sync`: %s%s",
                left.describe(),
                f" ({uploader.paused})" if uploader.paused else "",
            )
        return drained

    @staticmethod
    def _flush(uploader: Uploader, budget_s: float) -> bool:
        """Send everything within `budget_s`; True when nothing is left.

        A hub this session never reached gets OFFLINE_FLUSH_TIMEOUT_S of it, not the whole
        budget: it has been down all along, and what it misses stays on disk. If it answers
        within that time, the rest of the budget is used as usual.
        """
        deadline = time.monotonic() + budget_s
        first_s = budget_s if uploader.reached else min(budget_s, OFFLINE_FLUSH_TIMEOUT_S)
        drained = uploader.flush(first_s)
        if not drained and uploader.reached and first_s < budget_s and not uploader.paused:
            drained = uploader.flush(max(0.0, deadline - time.monotonic()))
        return drained

    close = finish

    def _finish_at_exit(self, timeout_s: float) -> None:
        """Mark a run its process left unfinished as failed, sending what `timeout_s` allows.

        A session the loop never gave anything to is only closed: nothing was trained, so
        nothing failed, and its model keeps its status.
        """
        if self._uploader is None or os.getpid() != self._pid:  # finished, or a forked child
            return
        state: HeartbeatState = "failed" if self._journaled else "finished"
        if state == "failed":
            logger.warning(
                "trainhub: the process is exiting before the run of %s finished; reporting it "
                "as failed (call finish() at the end of training to report success)",
                self.model_url,
            )
        try:
            self.finish(state, timeout_s=timeout_s)
        except Exception:  # nothing may stop the interpreter from exiting
            logger.exception("trainhub: could not report the unfinished run")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish("failed" if exc is not None else "finished")

    def _progress_bar(self, total_bytes: int, kind: str) -> Progress:
        bar = tqdm(
            total=total_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=f"trainhub: uploading {'final weights' if kind == 'final' else kind}",
        )

        def advance(sent: int) -> None:
            bar.update(sent)
            if bar.n >= total_bytes:
                bar.close()

        return advance

    # --- the stock HUB session's request helpers ---------------------------------------------

    def request_queue(
        self,
        request_func: Callable[..., Any],
        retry: int = 3,
        timeout: float = 30,
        thread: bool = True,
        verbose: bool = True,
        progress_total: int | None = None,
        stream_response: bool | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Call `request_func` with retries and backoff; in a background thread when `thread`.

        A call that returns None or raises is retried; a response with a status is returned on
        2xx, retried on 408/429/5xx and given up otherwise (the server's message is logged once).
        Metrics passed as `metrics=` go back to `metrics_upload_failed_queue` when all fail.
        """

        def attempt_all() -> Any:
            started, response = time.monotonic(), None
            for attempt in range(retry + 1):
                if time.monotonic() - started > timeout:
                    logger.warning("trainhub: giving up after %.0f s", timeout)
                    break
                response = self._attempt(request_func, args, kwargs)
                status = getattr(response, "status_code", None)
                if response is not None and status is not None and 200 <= status < 300:
                    if kwargs.get("metrics"):
                        self.metrics_upload_failed_queue = {}
                    return response
                if status is not None:
                    if attempt == 0 and verbose:
                        logger.warning(
                            "trainhub: %s", self._get_failure_message(response, retry, timeout)
                        )
                    if not self._should_retry(status):
                        break
                self._sleep(min(2**attempt, 60))
            if kwargs.get("metrics") and (
                response is None or getattr(response, "status_code", 0) >= 300
            ):
                self.metrics_upload_failed_queue.update(kwargs["metrics"])
            return response

        if thread:
            threading.Thread(target=attempt_all, daemon=True, name="trainhub-request").start()
            return None
        return attempt_all()

    @staticmethod
    def _attempt(
        request_func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        try:
            return request_func(*args, **kwargs)
        except (TrainhubError, httpx.HTTPError, OSError) as exc:
            logger.warning("trainhub: request failed: %s", exc)
            return None

    @staticmethod
    def _should_retry(status_code: int) -> bool:
        """Tell whether a failed request is worth repeating (408, 429, 500, 502, 503, 504)."""
        return is_retryable_status(status_code)

    def _get_failure_message(self, response: Any, retry: int, timeout: float) -> str:
        """Describe a failed response: its rate-limit headers for 429, else the server's message."""
        status = int(response.status_code)
        headers = getattr(response, "headers", {}) or {}
        if status != HTTPStatus.TOO_MANY_REQUESTS and self._should_retry(status):
            return f"Retrying {retry}x for {timeout}s." if retry else ""
        body = getattr(response, "content", b"") or b""
        return failure_message(status, headers, body if isinstance(body, bytes) else b"")


# Strong references: a run stays open while its upload thread runs, whether or not the training
# code still holds its session; finish() takes the session out.
_open_sessions: set[HUBTrainingSession] = set()
_open_sessions_lock = threading.Lock()


def _register_for_exit(session: HUBTrainingSession) -> None:
    """Have `session` finished as failed if the interpreter exits while its run is unfinished.

    A script whose training raised, or that never calls finish(), otherwise stops its heartbeats
    without a word and the hub can only say "offline". One atexit hook serves every session;
    it is not a signal handler, and a process killed by a signal is judged by liveness instead.
    """
    with _open_sessions_lock:
        _open_sessions.add(session)


def _forget_at_exit(session: HUBTrainingSession) -> None:
    with _open_sessions_lock:
        _open_sessions.discard(session)


@atexit.register
def _finish_open_sessions_at_exit() -> None:
    deadline = time.monotonic() + EXIT_FLUSH_TIMEOUT_S  # shared: one wait, however many runs
    with _open_sessions_lock:
        sessions = list(_open_sessions)
    for session in sessions:
        session._finish_at_exit(max(0.0, deadline - time.monotonic()))
