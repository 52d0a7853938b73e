"""Work a running server does on a timer: the clean-up (services/gc.py) every `gc_interval_s`,
and the pruning of old live changes (services/live.py) every PRUNE_EVERY_S.

The task starts with the app (its lifespan, app.py) and ends with it. Each replica runs its own:
that is what clears its spool, and the shared parts (blobs, multipart uploads, expired uploads)
are removed idempotently, so two replicas cleaning at once do no harm. The first run waits one
interval plus up to a tenth more, so that replicas started together do not clean together.
"""

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from trainhub.server.services.gc import collect_garbage
from trainhub.server.services.live import prune_changes
from trainhub.server.state import hub_state

logger = logging.getLogger(__name__)
PRUNE_EVERY_S = 300.0


async def clean_up_every(app: FastAPI, interval_s: float) -> None:
    """Run the clean-up every `interval_s` until cancelled; a failed run is logged, not fatal."""
    delay_s = interval_s * (1 + random.random() / 10)
    while True:
        await asyncio.sleep(delay_s)
        delay_s = interval_s
        hub = hub_state(app)
        try:
            collection = await run_in_threadpool(
                collect_garbage,
                hub.db,
                hub.storage,
                grace=timedelta(seconds=hub.settings.gc_grace_s),
            )
        except Exception:
            logger.warning("the periodic clean-up failed; it runs again later", exc_info=True)
            continue
        if collection.removed or collection.failed:
            logger.info("clean-up removed %s", collection.summary())


async def prune_changes_every(app: FastAPI, interval_s: float) -> None:
    """Delete old live changes every `interval_s` until cancelled; a failure is logged."""
    while True:
        await asyncio.sleep(interval_s * (1 + random.random() / 10))
        try:
            await run_in_threadpool(prune_changes, hub_state(app).db)
        except Exception:
            logger.warning("could not prune the live changes; trying again later", exc_info=True)


@asynccontextmanager
async def periodic_work(app: FastAPI) -> AsyncIterator[None]:
    """Run the server's timed work while the block runs (the app's lifespan)."""
    interval_s = hub_state(app).settings.gc_interval_s
    tasks = [asyncio.create_task(prune_changes_every(app, PRUNE_EVERY_S))]
    if interval_s > 0:
        tasks.append(asyncio.create_task(clean_up_every(app, interval_s)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
