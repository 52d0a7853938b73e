"""Apply Alembic migrations (at start-up and by `trainhub db upgrade`)."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

from trainhub.server.filemodes import PRIVATE_FILE_MODE, create_private_file

MIGRATIONS = Path(__file__).parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    """Return an Alembic config for the database at `url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest schema (a new SQLite file is made 0600)."""
    restrict_sqlite_files(url)
    command.upgrade(alembic_config(url), "head")


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def restrict_sqlite_files(url: str) -> None:
    """Create the SQLite file of `url` as 0600 if missing; make it and its -wal/-shm 0600.

    SQLite creates the -wal and -shm files with the database file's mode, so new ones follow
    (docs/security.md §2.16). Nothing happens for other databases, in-memory SQLite, or a folder
    that does not exist (the connection then fails as it would have).
    """
    path = sqlite_path(url)
    if path is None or not path.parent.is_dir():
        return
    create_private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = Path(f"{path}{suffix}")
        if companion.exists():
            companion.chmod(PRIVATE_FILE_MODE)


def is_created(url: str) -> bool:
    """Tell whether the database at `url` holds trainhub's tables; never creates a SQLite file."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return False
    engine = create_engine(url)
    try:
        return inspect(engine).has_table("alembic_version")
    finally:
        engine.dispose()
