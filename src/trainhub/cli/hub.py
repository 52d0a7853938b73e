"""What the client commands share: a HubClient for the saved credentials, client errors turned
into a message and exit status 1, and upload progress bars on stderr.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from tqdm import tqdm

from trainhub.client import credentials
from trainhub.client.api import HubClient
from trainhub.client.errors import TrainhubError
from trainhub.client.transfer import Progress

CLI_RETRIES = 2
DEFAULT_LIMIT = 20
LIMIT_OPTION = typer.Option(
    DEFAULT_LIMIT, "--limit", min=1, help="Show at most this many, newest first."
)


def fail(message: str, status: int = 1) -> NoReturn:
    """Print `message` on stderr and exit with `status`."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(status)


def quiet_http_logs() -> None:
    """Keep httpx's INFO line per request out of command output (--log-level DEBUG shows it)."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)


@contextmanager
def hub_errors() -> Iterator[None]:
    """Turn a client error raised in the block into its message and exit status 1."""
    try:
        yield
    except TrainhubError as exc:
        fail(str(exc))


@contextmanager
def connect(url: str | None = None, api_key: str | None = None) -> Iterator[HubClient]:
    """Yield a HubClient for the credentials found (see credentials.resolve); errors exit 1."""
    quiet_http_logs()
    with hub_errors():
        found = credentials.resolve(url, api_key)
        with HubClient(found.url, found.api_key, retries=CLI_RETRIES) as hub:
            yield hub


def progress_bar(total_bytes: int, what: str) -> Progress:
    """Return a progress callback drawing a byte bar on stderr (only on a terminal)."""
    bar = tqdm(
        total=total_bytes, unit="B", unit_scale=True, unit_divisor=1024, desc=what, disable=None
    )

    def advance(sent: int) -> None:
        bar.update(sent)
        if bar.n >= total_bytes:
            bar.close()

    return advance
