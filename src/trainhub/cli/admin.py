"""Operator commands: `trainhub server`, `users`, `keys` and `db`.

The last three talk to the database directly, so they work while the server is down. They find
it as the server does (--data-dir, --database-url, TRAINHUB_* variables, then ./trainhub-data),
say on stderr which one they used, and create a new one only when given --init.
"""

import json
import logging
import logging.config
import os
from pathlib import Path
from typing import Any

import typer

from trainhub.cli.hub import fail
from trainhub.cli.startup import (
    EXPORT_EXTRA,
    check_data_dir,
    check_port,
    create_app_or_exit,
    load_settings,
    missing_export_modules,
    open_database,
    require_server_stack,
)

logger = logging.getLogger(__name__)
users_app = typer.Typer(
    help="Manage users (operator commands; they use the database directly).", no_args_is_help=True
)
keys_app = typer.Typer(help="Manage a user's API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


def _needs_server_stack(ctx: typer.Context) -> None:
    """Check, before a subcommand imports it, that the server stack is installed."""
    require_server_stack(f"{ctx.info_name} {ctx.invoked_subcommand}")


for group in (users_app, keys_app, db_app):
    group.callback()(_needs_server_stack)

DATA_DIR = typer.Option(
    None,
    "--data-dir",
    help="The hub's data directory (TRAINHUB_DATA_DIR; default ./trainhub-data).",
    show_default=False,
)
DATABASE_URL = typer.Option(
    None,
    "--database-url",
    help="SQLAlchemy URL (default: SQLite in the data directory; TRAINHUB_DATABASE_URL).",
    show_default=False,
)
INIT = typer.Option(
    False, "--init", help="Create the database if there is none yet (otherwise: an error)."
)


def _user_or_exit(session: Any, name: str) -> Any:
    from trainhub.server.db import users

    user = users.find_user(session, name)
    if user is None:
        typer.echo(f"no user {name!r}; create one with `trainhub users create {name}`", err=True)
        raise typer.Exit(1)
    return user


def key_spellings(key: str) -> str:
    """Return the lines that show a new key in the spelling each client takes, HUB's last.

    One secret, two spellings (docs/protocol/platform.md §9.9): ultralytics 8.4 keeps only
    `ul_` + 40 hex, the HUB clients take no `_`. The last line is the key alone, for scripts.
    """
    from trainhub.protocol.ids import hub_spelling, platform_spelling

    return (
        "API key (shown only once; both lines are the same key):\n"
        f"  ultralytics 8.4 (yolo login, ULTRALYTICS_API_KEY):  {platform_spelling(key)}\n"
        "  hub-sdk, ultralytics 8.3 and trainhub (next line):\n"
        f"{hub_spelling(key)}"
    )


def _echo_key(key: str) -> None:
    typer.echo(key_spellings(key))


@users_app.command("create")
def users_create(
    name: str,
    admin: bool = typer.Option(False, "--admin", help="Make an admin."),
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
    init: bool = INIT,
) -> None:
    """Create a user; the new API key is shown in both spellings, HUB's as the last line."""
    from trainhub.server.db import users
    from trainhub.server.errors import HubError

    try:
        with open_database(data_dir, database_url, init=init) as db, db.write() as session:
            user, key = users.create_user(session, name, admin=admin)
    except HubError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created {'admin ' if admin else ''}user {user.name} ({user.id})")
    _echo_key(key)


@users_app.command("list")
def users_list(data_dir: Path | None = DATA_DIR, database_url: str | None = DATABASE_URL) -> None:
    """List users."""
    from sqlalchemy import select

    from trainhub.server.db.tables import UserRow

    with open_database(data_dir, database_url) as db, db.read() as session:
        rows = list(session.scalars(select(UserRow).order_by(UserRow.created_at)))
    typer.echo(f"{'ID':<20}  NAME")
    for user in rows:
        typer.echo(f"{user.id:<20}  {user.name}{'  (admin)' if user.is_admin else ''}")


@keys_app.command("create")
def keys_create(
    user: str = typer.Option(..., "--user", help="User name or id."),
    name: str = typer.Option("", "--name", help="A label for the key."),
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
) -> None:
    """Create an API key for a user, shown once in both spellings (HUB's as the last line)."""
    from trainhub.server.db import users

    with open_database(data_dir, database_url) as db, db.write() as session:
        _, key = users.create_key(session, _user_or_exit(session, user).id, name)
    _echo_key(key)


@keys_app.command("list")
def keys_list(
    user: str = typer.Option(..., "--user", help="User name or id."),
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
) -> None:
    """List a user's keys by prefix."""
    from trainhub.server.db import users

    with open_database(data_dir, database_url) as db, db.read() as session:
        keys = users.list_keys(session, _user_or_exit(session, user).id)
    typer.echo(f"{'ID':<20}  {'PREFIX':<11}  {'STATE':<18}  {'LAST USED':<16}  NAME")
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
        typer.echo(f"{key.id:<20}  {key.prefix + '...':<11}  {state:<18}  {used:<16}  {key.name}")


@keys_app.command("revoke")
def keys_revoke(
    key: str = typer.Argument(..., help="Key id or prefix."),
    user: str = typer.Option(..., "--user", help="User name or id."),
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
) -> None:
    """Revoke a key: it is refused from then on."""
    from trainhub.server.db import users

    with open_database(data_dir, database_url) as db, db.write() as session:
        row = users.revoke_key(session, _user_or_exit(session, user).id, key)
    if row is None:
        typer.echo(f"no key {key!r} for user {user!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {row.prefix}...")


@db_app.command("upgrade")
def db_upgrade(
    data_dir: Path | None = DATA_DIR, database_url: str | None = DATABASE_URL, init: bool = INIT
) -> None:
    """Apply database migrations (--init: create the database when there is none)."""
    with open_database(data_dir, database_url, init=init, announce=False) as db:
        typer.echo(f"database {db.describe()} is up to date")


def _first_admin(db: Any) -> str | None:
    from trainhub.server.db import users

    with db.write() as session:
        if users.count_users(session):
            return None
        _, key = users.create_user(session, "admin", admin=True)
        return key


def _announce(url: str, key: str | None, *, as_json: bool) -> None:
    """Print how to point the clients here, and a new admin's key (once, never logged)."""
    if as_json:  # a log collector reads stdout: one JSON object a line there too
        point = {"ULTRALYTICS_HUB_API": url, "ULTRALYTICS_PLATFORM_URL": url}
        typer.echo(json.dumps({"message": "point the clients here", **point}))
        if key:
            from trainhub.protocol.ids import platform_spelling

            created = {"message": "created user 'admin' (key shown once)", "key": key}
            typer.echo(json.dumps({**created, "platformKey": platform_spelling(key)}))
        return
    typer.echo(
        f"\nPoint hub-sdk and ultralytics 8.3 at this hub (set both before starting Python):\n"
        f"  export ULTRALYTICS_HUB_API={url}\n  export ULTRALYTICS_HUB_WEB={url}\n"
        f"Point ultralytics 8.4 at it (and train with project=OWNER/PROJECT):\n"
        f"  export ULTRALYTICS_PLATFORM_URL={url}\n"
    )
    if key:
        typer.echo(f"First start: created user 'admin'. {key_spellings(key)}\n")


def _check_embedded_worker(settings: Any) -> None:
    """Exit when `embedded_worker` is "on" but this Python lacks the export extra."""
    missing = missing_export_modules()
    if settings.embedded_worker == "on" and missing:
        fail(
            f"embedded_worker is on, but the export extra is not installed (no module "
            f"{missing[0]!r}); install it with: {EXPORT_EXTRA}, or set "
            "TRAINHUB_EMBEDDED_WORKER=off and run `trainhub worker` elsewhere",
            2,
        )


def _start_embedded_worker(settings: Any) -> Any:
    """Start the server's own worker when `embedded_worker` says so (docs/server.md, Workers)."""
    if settings.embedded_worker == "off":
        return None
    if missing_export_modules():
        logger.info(
            "no embedded worker: exports and predictions need the export extra (%s) here, or "
            "`trainhub worker` running elsewhere",
            EXPORT_EXTRA,
        )
        return None
    from trainhub.cli.embedded import EmbeddedWorker

    worker = EmbeddedWorker(settings, logging.getLevelName(logging.root.level))
    worker.start()
    return worker


def server(
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (TRAINHUB_HOST; 127.0.0.1)."
    ),
    port: int | None = typer.Option(None, "--port", help="Port (TRAINHUB_PORT; 8000)."),
    data_dir: Path | None = DATA_DIR,
    database_url: str | None = DATABASE_URL,
    storage_url: str | None = typer.Option(
        None,
        "--storage-url",
        help="Blob storage: file:///folder or s3://bucket/prefix (default: a folder in the data "
        "directory; TRAINHUB_STORAGE_URL).",
    ),
    public_url: str | None = typer.Option(
        None,
        "--public-url",
        help="URL clients use (TRAINHUB_PUBLIC_URL; default http://HOST:PORT).",
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        min=1,
        help="Server processes sharing the port and the data (TRAINHUB_WORKERS; 1).",
        show_default=False,
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="Addresses of reverse proxies whose X-Forwarded-For/-Proto headers are trusted, "
        "comma-separated (TRAINHUB_FORWARDED_ALLOW_IPS; default: none).",
        show_default=False,
    ),
    log_format: str | None = typer.Option(
        None,
        "--log-format",
        help="text, or json for one JSON object a line (TRAINHUB_LOG_FORMAT; default text).",
        show_default=False,
    ),
) -> None:
    """Run the hub server."""
    require_server_stack("server", status=2)

    from trainhub.server.accesslog import create_log_config
    from trainhub.server.filemodes import restrict_umask
    from trainhub.server.state import hub_state
    from trainhub.server.storage import StorageConfigError, StorageError

    restrict_umask()  # the database, blobs and temp files are for the server's user only
    settings = load_settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        storage_url=storage_url,
        public_url=public_url,
        forwarded_allow_ips=forwarded_allow_ips,
        workers=workers,
        log_format=log_format,
    )
    log_config = create_log_config(settings.log_format)
    logging.config.dictConfig(log_config)  # start-up lines in the chosen format too
    # checked before anything is created or announced (the first admin's key is shown once)
    check_data_dir(settings.data_dir, status=2)
    check_port(settings.host, settings.port, status=2)
    _check_embedded_worker(settings)
    app = create_app_or_exit(settings)
    try:
        hub_state(app).storage.check()
    except StorageConfigError as exc:  # wrong credentials or no bucket: waiting will not help
        fail(str(exc), 2)
    except StorageError as exc:  # the bucket may come up later; /healthz says 503 until then
        logger.warning("storage is not usable yet: %s", exc)
    key = _first_admin(hub_state(app).db) if settings.create_admin else None
    url = settings.resolved_public_url()
    logger.info(
        "trainhub listening on http://%s:%d, public URL %s", settings.host, settings.port, url
    )
    logger.info("database: %s", hub_state(app).db.describe())
    logger.info("storage: %s", hub_state(app).storage.describe())
    _announce(url, key, as_json=settings.log_format == "json")
    worker = _start_embedded_worker(settings)
    try:
        _serve(app, settings, log_config)
    finally:
        if worker is not None:
            worker.stop()


def _serve(app: Any, settings: Any, log_config: dict[str, Any]) -> None:
    """Run uvicorn: in this process, or in `settings.workers` processes of its own."""
    import uvicorn

    from trainhub.server.app import WORKER_SETTINGS, freeze_startup_objects
    from trainhub.server.state import hub_state

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        "log_config": log_config,  # download tokens and keys are redacted
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or None,
        "timeout_keep_alive": 30,
        "timeout_graceful_shutdown": 10,
    }
    if settings.workers <= 1:
        freeze_startup_objects()
        uvicorn.run(app, **options)
        return
    # N processes on one port: each builds its own app from the settings handed down here (the
    # database is migrated and the signing secret made, once, above)
    hub_state(app).db.dispose()
    settings.resolved_secret()
    os.environ[WORKER_SETTINGS] = settings.for_workers()
    uvicorn.run(
        "trainhub.server.app:create_worker_app", factory=True, workers=settings.workers, **options
    )
