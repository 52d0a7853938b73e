"""create_app(settings) -> FastAPI: the HUB v1 API, the Platform endpoints of ultralytics 8.4,
the dashboard and signed downloads on one origin."""

import logging

from fastapi import FastAPI

from trainhub._version import __version__
from trainhub.server import errors, platform, web
from trainhub.server.api import (
    auth,
    datasets,
    files,
    health,
    heartbeat,
    legacy,
    metrics,
    models,
    projects,
    runs,
    uploads,
    users,
    weights,
)
from trainhub.server.apidocs import install_api_docs
from trainhub.server.db import migrate
from trainhub.server.db.engine import Database
from trainhub.server.filemodes import make_private_dir
from trainhub.server.hosts import HostGuard
from trainhub.server.links import Links
from trainhub.server.ratelimit import RateLimiter
from trainhub.server.settings import Settings
from trainhub.server.state import HubState
from trainhub.server.storage import from_url

logger = logging.getLogger(__name__)
ROUTERS = (
    auth,
    models,
    metrics,
    weights,
    uploads,
    heartbeat,
    datasets,
    projects,
    users,
    legacy,
    files,
    health,
    runs,
    platform,
    web,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the server: migrate the database, open storage, mount every router."""
    settings = settings or Settings()
    make_private_dir(settings.data_dir)
    database_url = settings.resolved_database_url()
    migrate.upgrade(database_url)
    app = FastAPI(
        title="trainhub",
        version=__version__,
        description="Self-hosted hub for training runs; speaks the Ultralytics HUB v1 API and the "
        "Platform protocol of ultralytics 8.4.",
        docs_url=None,  # served by apidocs without a CDN
        redoc_url=None,
    )
    app.state.hub = HubState(
        settings=settings,
        db=Database(database_url),
        storage=from_url(settings.resolved_storage_url(), settings.data_dir / "spool"),
        links=Links.from_settings(settings),
        rate_limiter=RateLimiter(
            settings.rate_limit, settings.anonymous_rate_limit, settings.redis_url or "memory://"
        ),
    )
    for module in ROUTERS:
        app.include_router(module.router)
    web.mount_static(app)
    install_api_docs(app)
    errors.install_handlers(app)
    app.add_middleware(HostGuard, allowed_hosts=settings.resolved_allowed_hosts())
    return app
