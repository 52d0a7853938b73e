"""The objects one running hub shares between requests, built once by create_app.

`HubState` is the one place they live (`app.state.hub`), typed, so a route or a test reaches the
database as `hub_state(app).db` and never through an untyped attribute of its own invention.
"""

from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp

from trainhub.server.changefeed import ChangeFeed
from trainhub.server.db.engine import Database
from trainhub.server.jobs.queue import JobQueue
from trainhub.server.links import Links
from trainhub.server.ratelimit import RateLimiter
from trainhub.server.services.heartbeats import HeartbeatBoard
from trainhub.server.services.identity import KeyCache
from trainhub.server.services.ingest import MetricsWriter
from trainhub.server.settings import Settings
from trainhub.server.storage import Storage
from trainhub.server.telemetry import Telemetry


@dataclass(frozen=True)
class HubState:
    """What every request of one hub may use."""

    settings: Settings
    db: Database
    storage: Storage
    links: Links  # made for no reader: routes ask for links made for their caller
    rate_limiter: RateLimiter  # the API's per-user and per-address budgets
    keys: KeyCache  # recent key lookups, trusted for a second
    metrics: MetricsWriter  # metrics uploads, written in batches
    heartbeats: HeartbeatBoard  # trainers' beats, kept in memory and written when they matter
    queue: JobQueue  # exports and predictions for the worker processes
    telemetry: Telemetry  # the Prometheus metrics of /metrics
    changes: ChangeFeed  # what changed, for the dashboard's live streams


def hub_state(app: ASGIApp) -> HubState:
    """Return the state of the hub `app` (a FastAPI app built by create_app)."""
    state: HubState = app.state.hub  # type: ignore[attr-defined]  # set by create_app
    return state


def request_hub(connection: HTTPConnection) -> HubState:
    """Return the state of the hub a request reached."""
    return hub_state(connection.app)
