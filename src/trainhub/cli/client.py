"""The client commands: `login`, `logout`, `whoami`, `models ...`, `datasets ...` and `sync`.

They talk to a hub over HTTP with the key `trainhub login` saved (or TRAINHUB_URL and
TRAINHUB_API_KEY), so they need only the base install. One module per noun (auth.py,
models.py, datasets.py, sync.py; what they share is in hub.py); the operator commands are
in admin.py.
"""

import typer

from trainhub.cli import auth, datasets, models, sync


def register(app: typer.Typer) -> None:
    """Add the client commands to the `trainhub` app."""
    app.command("login")(auth.login)
    app.command("logout")(auth.logout)
    app.command("whoami")(auth.whoami)
    app.add_typer(models.models_app, name="models")
    app.add_typer(datasets.datasets_app, name="datasets")
    app.command("sync")(sync.sync)
