"""create_app(settings) -> FastAPI: the HUB v1 API, the Platform endpoints of ultralytics 8.4,
the dashboard and signed downloads on one origin.

The app puts export and prediction jobs on the queue; `trainhub worker` processes run them.
"""

import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI

from trainhub._version import __version__
from trainhub.server import errors, leanroutes, platform, web
from trainhub.server.admission import Admission
from trainhub.server.api import (
    auth,
    datasets,
    exports,
    files,
    health,
    heartbeat,
    legacy,
    metrics,
    models,
    monitoring,
    predictions,
    projects,
    runs,
    uploads,
    users,
    weights,
)
from trainhub.server.apidocs import install_api_docs
from trainhub.server.changefeed import ChangeFeed
from trainhub.server.db import migrate
from trainhub.server.db.engine import Database
from trainhub.server.filemodes import make_private_dir
from trainhub.server.hosts import HostGuard
from trainhub.server.jobs.queue import create_queue
from trainhub.server.links import Links
from trainhub.server.periodic import periodic_work
from trainhub.server.ratelimit import RateLimiter
from trainhub.server.services.heartbeats import HeartbeatBoard
from trainhub.server.services.identity import KeyCache
from trainhub.server.services.ingest import MetricsWriter
from trainhub.server.services.monitoring import active_runs
from trainhub.server.settings import Settings
from trainhub.server.state import HubState, hub_state
from trainhub.server.storage import from_url
from trainhub.server.telemetry import MetricsMiddleware, Telemetry

logger = logging.getLogger(__name__)
# routes are matched in this order: the two a trainer calls every epoch or beat come first
ROUTERS = (
    metrics,
    heartbeat,
    auth,
    models,
    weights,
    uploads,
    datasets,
    projects,
    users,
    legacy,
    exports,
    predictions,
    files,
    health,
    monitoring,
    runs,
    platform,
    web,
)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the hub (and its timed work); on the way out, write the heartbeats noted in memory."""
    # at most this many requests run database work in threads at once (docs/performance.md,
    # "Overload"): more threads only take the GIL from the event loop that answers everyone
    to_thread.current_default_thread_limiter().total_tokens = hub_state(app).settings.threads
    async with periodic_work(app):
        yield
    try:
        hub_state(app).heartbeats.flush()
    except Exception:  # a database that is gone at shutdown: at most a few seconds are lost
        logger.warning("could not write the last heartbeats at shutdown", exc_info=True)


WORKER_SETTINGS = "TRAINHUB_WORKER_SETTINGS"  # the parent's settings, for `--workers N`
RATE_FILE = "ratelimits.shm"  # counters shared by the workers of one server


def create_app(settings: Settings | None = None, *, upgrade: bool = True) -> FastAPI:
    """Build the server: migrate the database (unless `upgrade` is False), open storage, mount
    every router."""
    settings = settings or Settings()
    make_private_dir(settings.data_dir)
    database_url = settings.resolved_database_url()
    if upgrade:
        migrate.upgrade(database_url)
    app = FastAPI(
        title="trainhub",
        version=__version__,
        description="Self-hosted hub for training runs; speaks the Ultralytics HUB v1 API and the "
        "Platform protocol of ultralytics 8.4.",
        docs_url=None,  # served by apidocs without a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    db = Database(database_url)
    app.state.hub = HubState(
        settings=settings,
        db=db,
        storage=from_url(
            settings.resolved_storage_url(),
            settings.data_dir / "spool",
            settings.s3_public_endpoint,
        ),
        links=Links.from_settings(settings),
        rate_limiter=RateLimiter(
            settings.rate_limit,
            settings.anonymous_rate_limit,
            settings.redis_url or "memory://",
            shared_file=settings.data_dir / RATE_FILE if settings.workers > 1 else None,
        ),
        keys=KeyCache(),
        metrics=MetricsWriter(db, timeout_s=settings.database_wait_s),
        heartbeats=HeartbeatBoard(
            db,
            max_agents=settings.max_agents_per_model,
            default_interval_s=settings.heartbeat_interval_s,
        ),
        telemetry=Telemetry(),
        queue=create_queue(settings),
        changes=ChangeFeed(db, settings.redis_url),
    )
    db.on_changes = hub_state(app).changes.publish
    if settings.redis_url:
        hub_state(app).rate_limiter.check()  # ValueError: Redis does not answer
    hub_state(app).telemetry.count_active_runs(lambda: active_runs(db))
    leanroutes.include_routers(app, [module.router for module in ROUTERS])
    web.mount_static(app)
    install_api_docs(app)
    errors.install_handlers(app)
    app.add_middleware(
        Admission,
        max_in_flight=settings.max_requests_in_flight,
        wait_s=settings.admission_wait_s,
    )
    app.add_middleware(HostGuard, allowed_hosts=settings.resolved_allowed_hosts())
    # outermost: counts every request, those the host guard refuses included
    app.add_middleware(MetricsMiddleware, telemetry=hub_state(app).telemetry)
    return app


def create_worker_app() -> FastAPI:
    """Build the app of one of `trainhub server --workers N`'s processes.

    The parent process migrated the database and made the signing secret before it started
    the workers, and passed its settings in TRAINHUB_WORKER_SETTINGS.
    """
    app = create_app(Settings.from_workers(os.environ[WORKER_SETTINGS]), upgrade=False)
    freeze_startup_objects()
    return app


def freeze_startup_objects() -> None:
    """Keep the objects a server process made at start-up out of every later garbage collection.

    Called once per server process, after the app is built and before it serves. The modules,
    routes, models and tables made at start-up live as long as the process, yet every full
    collection walked all of them: a request that leaves many objects alive for a while (a
    chart of 10,000 epochs decodes 10,000 dicts) set one off every other time, and took 70-100 ms
    longer then (docs/performance.md, "Full collections"). Not for in-process apps (tests):
    frozen objects are never freed.
    """
    gc.freeze()
