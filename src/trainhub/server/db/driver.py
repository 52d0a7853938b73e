"""Statements a trainer runs every epoch, run on SQLite's own connection when the hub is on SQLite.

SQLAlchemy's execution machinery (execution context, result metadata, events) costs 40-70 µs
per statement on top of SQLite's own 5 µs, and one trainer's epoch POST runs four statements
(docs/performance.md, "Below SQLAlchemy's execution"). A `Statement` is written once as Core;
on SQLite it is compiled once and run on the driver's cursor, and it does for itself what Core
would do around it:

- every bound value passes through its type's bind processor, so what is stored is what the
  Core statement would store (a datetime in SQLAlchemy's text format, not sqlite3's);
- every returned value passes through its type's result processor (a boolean comes back as a
  bool, a datetime as an aware datetime);
- a driver error is raised as SQLAlchemy's (`sqlalchemy.exc.OperationalError` for a locked
  database), so the app's handlers answer it as any other (503 with Retry-After).

A statement that needs more of Core (an expanding IN list, a default computed in Python, bind
names that must be escaped) is refused when it is first compiled. On PostgreSQL, whose round
trips cost far more than SQLAlchemy does, a `Statement` runs as Core. Rows come back as tuples.
"""

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

Params = Mapping[str, Any]
Row = tuple[Any, ...]
_SQLITE = sqlite.dialect(paramstyle="named")


class Statement:
    """A Core statement, compiled for SQLite's driver on first use there."""

    def __init__(self, core: Select[*tuple[Any, ...]] | UpdateBase) -> None:
        self.core = core
        self._compiled: SQLCompiler | None = None
        self._binds: dict[str, Callable[[Any], Any]] = {}
        self._results: list[Callable[[Any], Any] | None] = []

    def _sqlite(self) -> SQLCompiler:
        if self._compiled is None:
            compiled = self.core.compile(dialect=_SQLITE)
            assert isinstance(compiled, SQLCompiler)
            if (
                compiled.post_compile_params
                or compiled.insert_prefetch
                or compiled.escaped_bind_names
            ):
                raise TypeError(
                    "a driver statement takes no expanding IN list, no default computed in "
                    f"Python and no bind name that needs escaping: {compiled.string[:80]!r}"
                )
            for bind, name in compiled.bind_names.items():
                processor = bind.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
                if processor is not None:
                    self._binds[name] = processor
            self._results = [
                column.type.dialect_impl(_SQLITE).result_processor(_SQLITE, None)
                for column in self.core.exported_columns
            ]
            self._compiled = compiled
        return self._compiled

    def _bound(self, compiled: SQLCompiler, params: Params) -> dict[str, Any]:
        values = dict(compiled.construct_params(dict(params)))
        for name, process in self._binds.items():
            values[name] = process(values[name])
        return values

    def _rows(self, raw: list[Row]) -> list[Row]:
        if not any(self._results):
            return raw
        return [
            tuple(
                value if process is None else process(value)
                for process, value in zip(self._results, row, strict=True)
            )
            for row in raw
        ]

    def rows(self, conn: Connection, params: Params) -> list[Row]:
        """Run the statement once; return the rows it returns (none for a plain write)."""
        if conn.dialect.name != "sqlite":
            return [tuple(row) for row in conn.execute(self.core, params)]
        compiled = self._sqlite()
        bound = self._bound(compiled, params)
        with _as_sqlalchemy_errors(compiled.string, bound):
            cursor = _driver(conn).execute(compiled.string, bound)
            try:
                return self._rows(cursor.fetchall())
            finally:
                cursor.close()

    def rows_many(self, conn: Connection, params: Sequence[Params]) -> list[Row]:
        """Run the statement once per set of parameters; return the rows each returns, in order.

        On PostgreSQL one statement carries them all (SQLAlchemy's "insertmanyvalues"); SQLite's
        driver cannot return rows from executemany, so there each runs on its own (5 µs apiece).
        """
        if conn.dialect.name != "sqlite":
            return [tuple(row) for row in conn.execute(self.core, list(params))] if params else []
        compiled = self._sqlite()
        rows: list[Row] = []
        cursor = _driver(conn).cursor()
        try:
            for one in params:
                bound = self._bound(compiled, one)
                with _as_sqlalchemy_errors(compiled.string, bound):
                    rows.extend(cursor.execute(compiled.string, bound).fetchall())
        finally:
            cursor.close()
        return self._rows(rows)

    def run_many(self, conn: Connection, params: Sequence[Params]) -> None:
        """Run the statement once per set of parameters (a write that returns nothing)."""
        if not params:
            return
        if conn.dialect.name != "sqlite":
            conn.execute(self.core, list(params))
            return
        compiled = self._sqlite()
        bound = [self._bound(compiled, p) for p in params]
        with _as_sqlalchemy_errors(compiled.string, bound):
            _driver(conn).executemany(compiled.string, bound).close()


@contextmanager
def _as_sqlalchemy_errors(sql: str, params: Any) -> Iterator[None]:
    """Raise a sqlite3 error as the SQLAlchemy error Core would have raised for it."""
    try:
        yield
    except sqlite3.Error as exc:
        raise DBAPIError.instance(sql, params, exc, sqlite3.Error, dialect=_SQLITE) from exc


def begin_on_driver(conn: Connection, begin: str) -> None:
    """Start SQLite's transaction with `begin` on the driver's connection (a "begin" event).

    SQLAlchemy does not wrap what its "begin" event raises, so a locked database is raised
    here as its OperationalError, as Core raises it for any statement.
    """
    with _as_sqlalchemy_errors(begin, ()):
        conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]


def _driver(conn: Connection) -> Any:
    """Return the sqlite3 connection under `conn`, in a transaction as Core's execute would be.

    Without one, Core begins it (autobegin); so does this, so that the statements that follow
    see the same snapshot.
    """
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.driver_connection


def connection(conn: Session | Connection) -> Connection:
    """Return the connection of a session's transaction, or `conn` itself."""
    return conn.connection() if isinstance(conn, Session) else conn
