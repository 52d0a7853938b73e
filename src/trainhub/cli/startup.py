"""How the operator commands (`server`, `users`, `keys`, `db`) start: settings, checks, database.

Each check ends the command with one line on stderr that says what to do, never a traceback, and
runs before anything is created or announced. The server stack is imported inside the functions
that need it, so a client-only install gets the install command instead of an ImportError.
"""

import errno
import importlib.util
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from trainhub.cli.hub import fail

# what `pip install "trainhub[server]"` adds that every operator command imports
SERVER_MODULES = ("fastapi", "uvicorn", "sqlalchemy", "alembic", "pydantic_settings")
SERVER_EXTRA = 'pip install "trainhub[server]"'
# what `pip install "trainhub[export]"` adds for `trainhub worker` (found, never imported here)
EXPORT_MODULES = ("torch", "ultralytics", "onnx", "onnxruntime", "numpy", "PIL", "cv2")
EXPORT_EXTRA = 'pip install "trainhub[export]"'


def missing_export_modules() -> list[str]:
    """Return the modules of the export extra this Python cannot find (none: it is installed).

    Only looked up, not imported, so the server process never loads torch.
    """
    return [name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None]


def require_server_stack(command: str, status: int = 1) -> None:
    """Exit with the install command when the server extra is missing (a client-only install)."""
    missing = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        fail(
            f"`trainhub {command}` needs the server extra, which is not installed (no module "
            f"{missing[0]!r}); install it with: {SERVER_EXTRA}",
            status,
        )


def check_data_dir(path: Path, status: int = 1) -> None:
    """Exit when the data directory exists but is not a folder."""
    if path.exists() and not path.is_dir():
        fail(
            f"the data directory {path} is a file, not a folder; pass --data-dir with a folder "
            "(or set TRAINHUB_DATA_DIR)",
            status,
        )


def check_port(host: str, port: int, status: int = 2) -> None:
    """Exit unless the server could listen on host:port now (bound as uvicorn binds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as exc:
            fail(f"cannot listen on {host}:{port}: {listen_problem(exc)}", status)


def listen_problem(exc: OSError) -> str:
    """Return why a bind failed and what to do about it."""
    if exc.errno == errno.EADDRINUSE:
        return (
            "another process listens on that port (another trainhub server?); stop it, or "
            "pass another --port (TRAINHUB_PORT)"
        )
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges); pass --port 8000"
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"{exc.strerror or exc}; pass --host with an address of this machine"
    return f"{exc.strerror or exc}"


def first_line(exc: BaseException) -> str:
    """Return the first line of an exception's message (drivers add SQL and links below it)."""
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    text = str(cause).strip() or type(cause).__name__
    return text.splitlines()[0]


def load_settings(**given: Any) -> Any:
    """Return Settings from the given options, TRAINHUB_* variables and defaults, in that order.

    An invalid value (TRAINHUB_PORT=abc) exits 2 naming the setting.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from trainhub.server.settings import Settings

    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except SettingsError as exc:  # a list variable that is not JSON
        fail(f'invalid setting: {exc}; write a list as JSON, such as \'["a", "b"]\'', 2)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "?"
        fail(f"invalid setting {name} (TRAINHUB_{name.upper()}): {error['msg']}", 2)


def missing_database(described: str) -> str:
    """Return the error for a database that is not there, with the ways to name the right one."""
    return (
        f"no trainhub database at {described}; name the hub's with --data-dir DIR (or "
        "TRAINHUB_DATA_DIR) or --database-url URL, as the server was started, or pass --init "
        "to create a new one there"
    )


@contextmanager
def open_database(
    data_dir: Path | None, database_url: str | None, *, init: bool = False, announce: bool = True
) -> Iterator[Any]:
    """Open (and migrate) the database the options name; close its connections on the way out.

    A database that does not exist yet is created only with `init`; without it the command exits
    1 naming where it looked. `announce` prints the database used on stderr (stdout stays for
    what scripts read, such as a new key on the last line).
    """
    from sqlalchemy.exc import SQLAlchemyError

    from trainhub.server.db import migrate
    from trainhub.server.db.engine import Database, describe_url
    from trainhub.server.filemodes import make_private_dirs

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    check_data_dir(settings.data_dir)
    url = settings.resolved_database_url()
    described = "the --database-url given"  # never echo a URL that may hold a password
    try:
        described = describe_url(url)
        created = not migrate.is_created(url)
        if created and not init:
            fail(missing_database(described))
        if created and (path := migrate.sqlite_path(url)) is not None:
            make_private_dirs(path.parent)  # 0700, like the server's (docs/server.md)
        migrate.upgrade(url)
        db = Database(url)
    except migrate.SchemaTooNewError as exc:
        fail(str(exc))
    except (SQLAlchemyError, OSError) as exc:
        fail(f"cannot open the database {described}: {first_line(exc)}")
    if announce:
        typer.echo(f"database: {described}{' (created)' if created else ''}", err=True)
    try:
        yield db
    finally:
        db.dispose()


def create_app_or_exit(settings: Any) -> Any:
    """Build the app (migrations, storage); exit 2 with one line when it cannot start."""
    from sqlalchemy.exc import SQLAlchemyError

    from trainhub.server.app import create_app
    from trainhub.server.db.engine import describe_url

    try:
        return create_app(settings)
    except ValueError as exc:  # an unusable storage URL, boto3 missing, no Redis, a newer schema
        fail(str(exc), 2)
    except SQLAlchemyError as exc:
        described = describe_url(settings.resolved_database_url())
        fail(f"cannot open the database {described}: {first_line(exc)}", 2)
    except OSError as exc:  # the data directory or storage folder cannot be created
        fail(f"cannot start: {exc}", 2)
