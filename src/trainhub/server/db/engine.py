"""The database handle: read and write sessions, tuned for SQLite (WAL) and PostgreSQL.

On SQLite, writes go through one connection and start with BEGIN IMMEDIATE: a deferred BEGIN
that later upgrades to a writer fails with "database is locked" under load (docs/security.md §2.8).
"""

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from trainhub.server.db.changes import Change, take_noted
from trainhub.server.db.driver import begin_on_driver

logger = logging.getLogger(__name__)


def _tune_sqlite(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=10000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # on the driver's connection: every transaction starts here, and a statement through
        # SQLAlchemy's execution machinery costs several times the BEGIN itself
        begin_on_driver(conn, begin)


def create_engines(url: str) -> tuple[Engine, Engine]:
    """Return (reader, writer) engines for `url`; they are the same engine except on SQLite."""
    if make_url(url).get_backend_name() != "sqlite":
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        return engine, engine
    args = {"check_same_thread": False, "timeout": 10}
    reader = create_engine(url, connect_args=args, pool_size=8, max_overflow=8)
    writer = create_engine(url, connect_args=args, pool_size=1, max_overflow=0, pool_timeout=60)
    _tune_sqlite(reader, "BEGIN")
    _tune_sqlite(writer, "BEGIN IMMEDIATE")
    return reader, writer


def describe_url(url: str) -> str:
    """Return a database URL with any password hidden, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


class Database:
    """Sessions for reading and for writing; a write session commits once, at the end.

    The live changes a transaction noted (db/changes.py) go to `on_changes` once it committed.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.reader, self.writer = create_engines(url)
        self._read = sessionmaker(self.reader, expire_on_commit=False)
        # SQLite's read transaction is a snapshot already; PostgreSQL's default (READ COMMITTED)
        # gives each statement its own, so a snapshot asks for REPEATABLE READ
        snapshot = self.reader
        if make_url(url).get_backend_name() != "sqlite":
            snapshot = snapshot.execution_options(isolation_level="REPEATABLE READ")
        self._snapshot = sessionmaker(snapshot, expire_on_commit=False)
        self._write = sessionmaker(self.writer, expire_on_commit=False)
        self.on_changes: Callable[[list[Change]], None] | None = None  # set by create_app
        self.before_dispose: list[Callable[[], None]] = []  # e.g. stop threads that read

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Yield a session for queries that change nothing."""
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def snapshot(self) -> Iterator[Session]:
        """Yield a session for queries that change nothing and must all see the same moment."""
        with self._snapshot() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Yield a session whose changes are committed together when the block ends."""
        with self._write() as session:
            try:
                with session.begin():
                    yield session
                committed = take_noted(session)
            finally:
                take_noted(session)  # a rolled-back change is not announced
        self._announce(committed)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """Yield a connection whose statements are committed together when the block ends."""
        with self.writer.connect() as conn:
            try:
                with conn.begin():
                    yield conn
                committed = take_noted(conn)
            finally:
                take_noted(conn)  # the connection goes back to the pool without them
        self._announce(committed)

    def _announce(self, changes: list[Change]) -> None:
        if changes and self.on_changes is not None:
            self.on_changes(changes)

    def ping(self) -> None:
        """Run a trivial query; raise if the database cannot be reached."""
        with self.reader.connect() as conn:
            conn.execute(text("SELECT 1"))

    def describe(self) -> str:
        """Return the URL with any password hidden, for logs."""
        return describe_url(self.url)

    def dispose(self) -> None:
        """Stop what reads in the background, then close every pooled connection."""
        for stop in self.before_dispose:
            stop()
        self.reader.dispose()
        if self.writer is not self.reader:
            self.writer.dispose()
