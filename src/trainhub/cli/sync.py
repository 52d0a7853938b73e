"""`trainhub sync`: send what training runs left in the outbox to their hubs."""

from dataclasses import dataclass

import typer

from trainhub import __version__
from trainhub.cli.hub import fail, progress_bar, quiet_http_logs
from trainhub.client import credentials
from trainhub.client.api import HubClient
from trainhub.client.errors import ConfigError
from trainhub.client.outbox import Outbox, Pending
from trainhub.client.transfer import Progress
from trainhub.client.uploader import Uploader

SYNC_TIMEOUT_S = 300.0
# flush() ignores the metrics and checkpoint limits; heartbeats are off while syncing
SYNC_RATE_LIMITS = {"metrics": 0.0, "ckpt": 0.0, "heartbeat": 30.0}


@dataclass(frozen=True)
class SyncReport:
    """What `sync_model` sent of one model and what is still in the outbox."""

    server: str
    model_id: str
    sent: Pending
    left: Pending
    problem: str | None = None

    def describe(self) -> str:
        """Return one line for the user."""
        head = f"model {self.model_id} on {self.server}: sent {self.sent.describe()}"
        if self.left.is_empty():
            return f"{head}; nothing left"
        return f"{head}; left {self.left.describe()} ({self.problem or 'not sent in time'})"


def upload_bar(total_bytes: int, kind: str) -> Progress:
    """Return a progress callback for one upload of the outbox."""
    return progress_bar(total_bytes, f"uploading {'final weights' if kind == 'final' else kind}")


def sync_model(outbox: Outbox, hub: HubClient, model_id: str, timeout_s: float) -> SyncReport:
    """Send what the outbox holds for one model (no heartbeats); wait at most `timeout_s`."""
    before = outbox.pending(hub.url, model_id)
    uploader = Uploader(
        hub,
        outbox,
        model_id,
        rate_limits=dict(SYNC_RATE_LIMITS),
        agent=f"trainhub-sync-{__version__}",
        heartbeats=False,
        progress=upload_bar,
    )
    uploader.start()
    try:
        uploader.flush(timeout_s)
    finally:
        uploader.stop()
    left = outbox.pending(hub.url, model_id)
    return SyncReport(hub.url, model_id, before - left, left, uploader.paused)


def sync_server(outbox: Outbox, server: str, model_id: str, timeout_s: float) -> SyncReport:
    """Find the key for `server` and send one model's part of the outbox."""
    try:
        found = credentials.resolve(url=server)
    except ConfigError as exc:
        return SyncReport(server, model_id, Pending(), outbox.pending(server, model_id), str(exc))
    with HubClient(found.url, found.api_key, retries=1) as hub:
        return sync_model(outbox, hub, model_id, timeout_s)


def sync(
    timeout: float = typer.Option(
        SYNC_TIMEOUT_S, "--timeout", min=0.0, help="Seconds to wait for each model at most."
    ),
) -> None:
    """Send what training runs left in the outbox (metrics and final weights) to their hubs."""
    quiet_http_logs()
    outbox, left = Outbox(), False
    try:
        pending = outbox.pending_models()
        if not pending:
            typer.echo(f"nothing to send: the outbox {outbox.path} is empty")
        for server, model_id in pending:
            report = sync_server(outbox, server, model_id, timeout)
            typer.echo(report.describe())
            left = left or not report.left.is_empty()
    finally:
        outbox.close()
    if left:
        fail(f"what is left stays in {outbox.path}; run `trainhub sync` again once the hub is up")
