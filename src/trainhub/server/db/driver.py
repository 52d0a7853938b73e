"""Statements a trainer runs every epoch, run on SQLite's own connection when the hub is on SQLite.

SQLAlchemy's execution machinery (execution context, result metadata, events) costs 40-70 µs
per statement on top of SQLite's own 5 µs, and one trainer's epoch POST runs four statements
(docs/performance.md, "Below SQLAlchemy's execution"). A `Statement` is written once as Core;
on SQLite it is compiled once and run on the driver's cursor, with every bound value passed
through its type's bind processor, so what is stored is what the Core statement would store. On
PostgreSQL, whose round trips cost far more than SQLAlchemy does, it runs as Core.

Rows come back as plain tuples on both, in the order of the statement's columns.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

Params = Mapping[str, Any]
_SQLITE = sqlite.dialect(paramstyle="named")


class Statement:
    """A Core statement, compiled for SQLite's driver on first use there."""

    def __init__(self, core: Select[*tuple[Any, ...]] | UpdateBase) -> None:
        self.core = core
        self._compiled: SQLCompiler | None = None
        self._processors: dict[str, Callable[[Any], Any]] = {}

    def _sqlite(self) -> SQLCompiler:
        if self._compiled is None:
            compiled = self.core.compile(dialect=_SQLITE)
            assert isinstance(compiled, SQLCompiler)
            for bind, name in compiled.bind_names.items():
                processor = bind.type.dialect_impl(_SQLITE).bind_processor(_SQLITE)
                if processor is not None:
                    self._processors[name] = processor
            self._compiled = compiled
        return self._compiled

    def _bound(self, compiled: SQLCompiler, params: Params) -> dict[str, Any]:
        values = dict(compiled.construct_params(dict(params)))
        for name, process in self._processors.items():
            values[name] = process(values[name])
        return values

    def rows(self, conn: Connection, params: Params) -> list[tuple[Any, ...]]:
        """Run the statement once; return the rows it returns (none for a plain write)."""
        if conn.dialect.name != "sqlite":
            return [tuple(row) for row in conn.execute(self.core, params)]
        compiled = self._sqlite()
        cursor = _driver(conn).execute(compiled.string, self._bound(compiled, params))
        try:
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows
        finally:
            cursor.close()

    def rows_many(self, conn: Connection, params: Sequence[Params]) -> list[tuple[Any, ...]]:
        """Run the statement once per set of parameters; return the rows each returns, in order.

        On PostgreSQL one statement carries them all (SQLAlchemy's "insertmanyvalues"); SQLite's
        driver cannot return rows from executemany, so there each runs on its own (5 µs apiece).
        """
        if conn.dialect.name != "sqlite":
            return [tuple(row) for row in conn.execute(self.core, list(params))] if params else []
        compiled = self._sqlite()
        cursor = _driver(conn).cursor()
        try:
            rows: list[tuple[Any, ...]] = []
            for one in params:
                rows.extend(cursor.execute(compiled.string, self._bound(compiled, one)).fetchall())
            return rows
        finally:
            cursor.close()

    def run_many(self, conn: Connection, params: Sequence[Params]) -> None:
        """Run the statement once per set of parameters (a write that returns nothing)."""
        if not params:
            return
        if conn.dialect.name != "sqlite":
            conn.execute(self.core, list(params))
            return
        compiled = self._sqlite()
        bound: Iterable[dict[str, Any]] = (self._bound(compiled, p) for p in params)
        _driver(conn).executemany(compiled.string, bound).close()


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
