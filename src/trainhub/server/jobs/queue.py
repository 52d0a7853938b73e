"""The job queue: huey on a SQLite file by default, on Redis when `redis_url` is set.

Both backends run the same code (docs/decisions/0017-job-queue.md). Two kinds of job exist:
`export` (argument: an export id; the state lives in the database's `exports` table) and
`predict` (argument: the request, image included; the answer comes back through huey's result
store). Predictions go first: they have a caller waiting. The server process only enqueues and
reads results; a worker process installs a handler for each kind and runs huey's consumer.
"""

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from huey import Huey, PriorityRedisExpireHuey, SqliteHuey
from huey.api import TaskWrapper
from huey.constants import EmptyData

from trainhub.server.filemodes import create_private_file, make_private_dirs
from trainhub.server.jobs.serializer import JsonSerializer
from trainhub.server.settings import Settings

logger = logging.getLogger(__name__)

EXPORT = "export"
PREDICT = "predict"
PRIORITY = {PREDICT: 10, EXPORT: 0}  # higher runs first
RESULT_TTL_S = 3600  # Redis drops a result nobody read after this long


class QueueUnavailableError(Exception):
    """The queue's storage (the SQLite file, Redis) failed."""


Handler = Callable[..., Any]


class JobQueue:
    """The queue of export and prediction jobs, as the server and the workers see it."""

    def __init__(self, huey: Huey, backend: str) -> None:
        self.huey = huey
        self.backend = backend
        self._handlers: dict[str, Handler] = {}
        self._tasks: dict[str, TaskWrapper] = {
            kind: huey.task(name=kind, priority=PRIORITY[kind])(self._entry(kind))
            for kind in (EXPORT, PREDICT)
        }

    def _entry(self, kind: str) -> Handler:
        # the function huey calls in a worker; the server process installs no handler
        def run(*args: Any) -> Any:
            handler = self._handlers.get(kind)
            if handler is None:
                raise RuntimeError(f"no handler for {kind} jobs in this process")
            return handler(*args)

        run.__name__ = run.__qualname__ = kind
        return run

    def handle(self, kind: str, handler: Handler) -> None:
        """Run `handler` for every job of `kind` this process consumes (workers only)."""
        self._handlers[kind] = handler

    def enqueue_export(self, export_id: str) -> None:
        """Queue the export job `export_id` (its state is in the database)."""
        self._enqueue(self._tasks[EXPORT].s(export_id))

    def enqueue_prediction(self, request: dict[str, Any], expires_s: float) -> str:
        """Queue a prediction; return the id its result will be stored under.

        A worker that picks it up after `expires_s` skips it: nobody waits for it any more.
        """
        task = self._tasks[PREDICT].s(request, expires=expires_s)
        self._enqueue(task)
        return str(task.id)

    def _enqueue(self, task: Any) -> None:
        try:
            self.huey.enqueue(task)
        except Exception as exc:  # sqlite3 or redis errors: the queue's storage is down
            raise QueueUnavailableError(f"cannot queue the job: {exc}") from exc

    def has_result(self, task_id: str) -> bool:
        """Tell whether a job's result is in the store (without taking it)."""
        try:
            return bool(self.huey.storage.has_data_for_key(task_id))
        except Exception as exc:
            raise QueueUnavailableError(f"cannot read the job's result: {exc}") from exc

    def take_result(self, task_id: str) -> Any:
        """Return a job's result and remove it from the store; None while there is none."""
        try:
            raw = self.huey.get_raw(task_id, peek=False)
        except Exception as exc:
            raise QueueUnavailableError(f"cannot read the job's result: {exc}") from exc
        return None if raw is EmptyData else self.huey.serializer.deserialize(raw)

    def depth(self) -> int:
        """Return how many jobs wait in the queue (not counting the ones running)."""
        try:
            return int(self.huey.pending_count())
        except Exception as exc:
            raise QueueUnavailableError(f"cannot read the queue: {exc}") from exc

    def pending_exports(self) -> set[str]:
        """Return the export ids that wait in the queue."""
        try:
            tasks = self.huey.pending()
        except Exception as exc:
            raise QueueUnavailableError(f"cannot read the queue: {exc}") from exc
        return {str(t.args[0]) for t in tasks if type(t).__name__ == EXPORT and t.args}

    def describe(self) -> str:
        """Return the backend and where it is, without any password, for logs."""
        return self.backend


def create_queue(settings: Settings) -> JobQueue:
    """Open the queue the settings name: Redis at `redis_url`, else a SQLite file."""
    serializer = JsonSerializer()
    if settings.redis_url:
        parts = urlsplit(settings.redis_url)
        described = f"redis://{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path}"
        huey = PriorityRedisExpireHuey(
            settings.queue_name,
            url=settings.redis_url,
            serializer=serializer,
            notify_result=True,
            expire_time=RESULT_TTL_S,
        )
        return JobQueue(huey, f"{described} (queue {settings.queue_name})")
    path = settings.resolved_queue_file()
    make_private_dirs(path.parent)
    create_private_file(path)  # 0600 like the database; SQLite gives -wal and -shm its mode
    huey = SqliteHuey(settings.queue_name, filename=str(path), serializer=serializer, timeout=10)
    return JobQueue(huey, f"sqlite:{path}")
