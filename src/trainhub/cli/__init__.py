"""The `trainhub` command: `trainhub <noun> <verb>`, plus `server` and `worker`.

Server commands import the server stack lazily, inside the command, so the client install
(`pip install trainhub`) runs `trainhub --help` without FastAPI or SQLAlchemy.
"""

import logging
import os

import typer

from trainhub._version import __version__
from trainhub.cli import admin, client, demo, ops, worker

app = typer.Typer(
    help="trainhub: a self-hosted hub for training runs (Ultralytics HUB v1 compatible).",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(admin.users_app, name="users")
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.db_app, name="db")
app.command("server")(admin.server)
app.command("gc")(ops.gc)
app.command("backup")(ops.backup)
app.command("restore")(ops.restore)
app.command("worker")(worker.worker)
client.register(app)
app.command("demo")(demo.demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trainhub {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    log_level: str = typer.Option(
        os.environ.get("TRAINHUB_LOG_LEVEL", "INFO"),
        "--log-level",
        help="DEBUG, INFO, WARNING or ERROR (also TRAINHUB_LOG_LEVEL).",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Set up logging for every command."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # one line per HTTP request or migration step is noise at INFO; botocore's debug lines
    # would also show signed request headers (a session token is a secret)
    for noisy in ("httpx", "alembic", "boto3", "botocore", "s3transfer", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))


def main() -> None:
    """Run the trainhub command."""
    app()


if __name__ == "__main__":
    main()
