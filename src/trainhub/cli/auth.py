"""`trainhub login`, `logout` and `whoami`: save, forget and check the API key of a hub."""

import os

import typer

from trainhub.cli.hub import connect, fail
from trainhub.client import credentials
from trainhub.client.api import Identity
from trainhub.client.errors import NotAuthenticated


def describe(identity: Identity) -> str:
    """Return a user's name, marked when an admin."""
    return identity.name + (" (admin)" if identity.is_admin else "")


def note_overrides() -> None:
    """Say which variables take precedence over the credentials file."""
    for env in (*credentials.URL_ENVS, *credentials.KEY_ENVS):
        if os.environ.get(env, "").strip():
            what = "URL" if env in credentials.URL_ENVS else "key"
            typer.echo(f"note: ${env} is set; it takes precedence over the saved {what}")


def login(
    key: str = typer.Argument(..., help="Your API key (the hub shows it once, when created)."),
    server: str | None = typer.Option(
        None,
        "--server",
        help="Hub URL such as http://hub:8000 (default: $TRAINHUB_URL, then the saved one).",
        show_default=False,
    ),
) -> None:
    """Check an API key with the hub and save it for later commands and training runs."""
    with connect(server, key) as hub:
        try:
            me = hub.authenticate()
        except NotAuthenticated as exc:
            fail(
                f"the hub at {hub.url} refused this key ({exc.message}); check that you "
                "copied all of it, or ask an operator for a new one "
                "(`trainhub keys create --user NAME`); nothing was saved"
            )
        path = credentials.save(hub.url, key)
    typer.echo(f"logged in to {hub.url} as {describe(me)}; key saved to {path}")
    note_overrides()


def logout() -> None:
    """Forget the saved API key (delete the file `trainhub login` wrote)."""
    path = credentials.credentials_path()
    if credentials.forget():
        typer.echo(f"logged out: removed {path}")
    else:
        typer.echo(f"nothing to forget: {path} does not exist")
    note_overrides()


def whoami() -> None:
    """Show which user and hub the current credentials belong to."""
    with connect() as hub:
        me = hub.authenticate()
    typer.echo(f"{describe(me)} on {hub.url}")
