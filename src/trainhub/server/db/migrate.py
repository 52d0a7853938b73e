"""Apply Alembic migrations (at start-up and by `trainhub db upgrade`).

Replicas started together on one database migrate it once: `upgrade` checks and migrates under
a lock that every trainhub process takes, a session-level advisory lock on PostgreSQL, an
exclusive `flock` of the database file on SQLite. The second process waits, then finds the
schema current and does nothing. A schema already at the newest revision (every start but the
first after an upgrade) is found so without the lock.
"""

import fcntl
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from trainhub._version import __version__
from trainhub.server.db.engine import describe_url
from trainhub.server.filemodes import PRIVATE_FILE_MODE, create_private_file

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent.parent / "migrations"
# pg_advisory_lock's key for migrations: any fixed 64-bit number ("trainhub" in ASCII)
MIGRATION_LOCK_KEY = 0x747261696E687562


def alembic_config(url: str) -> Config:
    """Return an Alembic config for the database at `url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class SchemaTooNewError(ValueError):
    """The database was migrated by a newer trainhub than this one."""


def upgrade(url: str) -> None:
    """Bring the database at `url` to the newest schema (a new SQLite file is made 0600).

    A database whose schema is newer than this code knows raises SchemaTooNewError: running
    on it could corrupt it, and downgrading it would lose what the newer version stored.
    """
    restrict_sqlite_files(url)
    head = schema_revisions()[1]
    # the common case, a restart: a schema already at the head needs no lock to find so
    if check_not_newer(url) == head:
        return
    with migration_lock(url):
        revision = check_not_newer(url)
        if revision == head:  # another process migrated it while this one waited
            return
        logger.debug(  # the CLI's commands print to stderr at INFO: keep them quiet
            "migrating the database %s from schema %s to %s",
            describe_url(url),
            revision or "(empty)",
            head,
        )
        command.upgrade(alembic_config(url), "head")


@functools.cache
def schema_revisions() -> tuple[frozenset[str], str]:
    """Return every schema revision this code knows, and the newest one.

    Read once per process: Alembic loads every migration file to answer, and the files do not
    change while the process runs.
    """
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = scripts.get_current_head()
    if head is None:
        raise RuntimeError(f"the migrations folder {MIGRATIONS} holds no revision")
    return frozenset(script.revision for script in scripts.walk_revisions()), head


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the lock that makes one trainhub process at a time check and migrate `url`.

    PostgreSQL: a session-level advisory lock on a connection of its own, released when the
    connection closes (also when the process dies). SQLite: `flock` on the database file, which
    SQLite's own (POSIX) locks ignore. In-memory SQLite needs no lock.
    """
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        yield  # no folder for it: connecting fails with SQLite's own message
        return
    if path is not None:
        with path.open("rb") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX)  # released when the file closes
            yield
        return
    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
    finally:
        engine.dispose()


def known_revisions() -> frozenset[str]:
    """Return every schema revision this code can migrate from or to."""
    return schema_revisions()[0]


def current_revision(url: str) -> str | None:
    """Return the schema revision of the database at `url` (None: not created yet)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def check_not_newer(url: str) -> str | None:
    """Return the database's schema revision; raise SchemaTooNewError when this code does not
    know it (None: a database without trainhub's tables)."""
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        return None  # a new SQLite file: nothing to compare (and connecting would create it)
    revision = current_revision(url)
    known, head = schema_revisions()
    if revision is not None and revision not in known:
        raise SchemaTooNewError(
            f"the database {describe_url(url)} has schema revision {revision!r}, newer than "
            f"this trainhub {__version__} knows (up to {head!r}); "
            "run the trainhub version that migrated it (upgrade this one), or restore a backup "
            "made with this version"
        )
    return revision


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
