"""Consistent database snapshots for `trainhub backup`, and loading them for `trainhub restore`.

Three formats, each taken in one snapshot of the database together with the blob keys its rows
name (so that a backup copies exactly the blobs its database needs):

- `sqlite`: SQLite's online backup API, a page-by-page copy that stays consistent while the
  server writes; the keys are read from the copy. Restored by the same API into a new file.
- `pg_dump`: `pg_dump --format=custom` of a snapshot exported from a REPEATABLE READ transaction
  (`pg_export_snapshot`) in which the keys are read too; restored with `pg_restore`.
- `portable`: every row of every table as JSON lines, read through SQLAlchemy in one
  transaction; restored into an empty database of either kind migrated to the snapshot's
  revision. It needs no client program, and moves a hub from SQLite to PostgreSQL.
"""

import json
import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from alembic import command
from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Integer,
    create_engine,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from trainhub.server.db import migrate
from trainhub.server.db.garbage import referenced_keys
from trainhub.server.db.tables import Base, UTCDateTime

FILE_NAMES = {"sqlite": "database.sqlite3", "pg_dump": "database.pgdump", "portable": "rows.jsonl"}
BATCH_ROWS = 500


class DumpError(Exception):
    """A snapshot could not be taken or loaded; the message says why and what to do."""


@dataclass(frozen=True)
class Snapshot:
    """A database snapshot on disk: its format, schema revision and the blob keys it names."""

    format: str
    revision: str | None
    keys: set[str]


def backend_of(url: str) -> str:
    """Return "sqlite", "postgresql", ... for a SQLAlchemy URL."""
    return str(make_url(url).get_backend_name())


def default_format(url: str) -> str:
    """Return the native format for `url`: sqlite, pg_dump (when installed) or portable."""
    backend = backend_of(url)
    if backend == "sqlite":
        return "sqlite"
    if backend == "postgresql" and shutil.which("pg_dump"):
        return "pg_dump"
    return "portable"


def check_format(url: str, fmt: str) -> None:
    """Raise DumpError unless `fmt` fits the database at `url`."""
    wants = {"sqlite": "sqlite", "pg_dump": "postgresql"}.get(fmt)
    if fmt not in FILE_NAMES:
        raise DumpError(f"unknown format {fmt!r}; use sqlite, pg_dump or portable")
    if wants is not None and backend_of(url) != wants:
        raise DumpError(
            f"the {fmt} format needs a {wants} database, not {backend_of(url)}; "
            "use the portable format"
        )


def dump(url: str, path: Path, fmt: str) -> Snapshot:
    """Write a snapshot of the database at `url` to `path` in `fmt`."""
    check_format(url, fmt)
    if fmt == "sqlite":
        return _dump_sqlite(url, path)
    if backend_of(url) != "sqlite":
        return _dump_in_snapshot(create_engine(url, isolation_level="REPEATABLE READ"), path, fmt)
    copy = path.with_name(path.name + ".sqlite3")  # read the rows from a consistent copy
    try:
        _dump_sqlite(url, copy)
        return _dump_in_snapshot(create_engine(f"sqlite:///{copy}"), path, fmt)
    finally:
        copy.unlink(missing_ok=True)


def _dump_in_snapshot(engine: Engine, path: Path, fmt: str) -> Snapshot:
    try:
        with engine.connect() as conn, conn.begin():
            revision = _revision(conn)
            keys = referenced_keys(Session(bind=conn))
            if fmt == "pg_dump":  # the dump sees exactly this transaction's snapshot
                exported = str(conn.execute(text("SELECT pg_export_snapshot()")).scalar())
                command_line = ["pg_dump", "--format=custom", f"--snapshot={exported}"]
                _run_client(command_line, engine.url.render_as_string(False), path)
            else:
                _write_rows(conn, path)
        return Snapshot(fmt, revision, keys)
    finally:
        engine.dispose()


def _dump_sqlite(url: str, path: Path) -> Snapshot:
    source_path = migrate.sqlite_path(url)
    if source_path is None or not source_path.is_file():
        raise DumpError(f"no SQLite database file at {source_path}")
    with sqlite3.connect(source_path) as source, sqlite3.connect(path) as target:
        source.backup(target)
    source.close()
    target.close()
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return Snapshot("sqlite", _revision(conn), referenced_keys(Session(bind=conn)))
    finally:
        engine.dispose()


def _revision(conn: Connection) -> str | None:
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _run_client(args: list[str], url: str, path: Path, *, restore: bool = False) -> None:
    """Run pg_dump or pg_restore on the database at `url` (the password goes in PGPASSWORD)."""
    program = args[0]
    if shutil.which(program) is None:
        raise DumpError(
            f"{program} is not installed; install postgresql-client, or use the portable format"
        )
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    options = parsed.query.get("options")
    if options:
        env["PGOPTIONS"] = str(options if isinstance(options, str) else options[-1])
    user = quote(parsed.username or "", safe="")
    host = f"{parsed.host or ''}{f':{parsed.port}' if parsed.port else ''}"
    target = f"postgresql://{user + '@' if user else ''}{host}/{quote(parsed.database or '')}"
    where = ["--dbname", target]
    schema = _search_path(env.get("PGOPTIONS", ""))
    if schema and not restore:  # a hub kept in one schema of a shared database
        where.append(f"--schema={schema}")
    files = [str(path)] if restore else ["--file", str(path)]
    done = subprocess.run(
        [*args, *where, *files], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no message"]
        reason = next((line for line in lines if "error:" in line), lines[-1])
        hint = ""
        if "version mismatch" in done.stderr:
            hint = "; install a postgresql-client as new as the server, or use --format portable"
        raise DumpError(f"{program} failed: {reason}{hint}")


def _search_path(options: str) -> str | None:
    """Return the schema of `-csearch_path=NAME` in libpq options, None without one."""
    match = re.search(r"-c\s*search_path=([A-Za-z_][A-Za-z0-9_]*)", options)
    return match.group(1) if match else None


# --- the portable format ------------------------------------------------------------------------


def _write_rows(conn: Connection, path: Path) -> None:
    with path.open("w") as out:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                out.write(json.dumps({"table": table.name, "row": dict(row)}, default=_encode))
                out.write("\n")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to a portable dump")


def _read_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open() as lines:
        for line in lines:
            item = json.loads(line)
            yield item["table"], item["row"]


def _decoded(table_name: str, row: dict[str, Any]) -> dict[str, Any]:
    table = Base.metadata.tables[table_name]
    for column in table.columns:
        value = row.get(column.name)
        if isinstance(value, str) and isinstance(column.type, UTCDateTime | DateTime):
            row[column.name] = datetime.fromisoformat(value)
    return row


def load(url: str, path: Path, snapshot: Snapshot) -> None:
    """Load a snapshot into the empty database at `url`, then migrate it to the newest schema."""
    if snapshot.format == "sqlite":
        target = migrate.sqlite_path(url)
        if target is None:
            raise DumpError(
                "a sqlite snapshot restores into SQLite only; back up with "
                "--format portable to move to PostgreSQL"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        migrate.restrict_sqlite_files(url)
        with sqlite3.connect(path) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        source.close()
        copy.close()
    elif snapshot.format == "pg_dump":
        if backend_of(url) != "postgresql":
            raise DumpError("a pg_dump snapshot restores into PostgreSQL only")
        restore = [
            "pg_restore",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
        ]
        _run_client(restore, url, path, restore=True)
    else:
        _load_rows(url, path, snapshot.revision)
    migrate.upgrade(url)


def _load_rows(url: str, path: Path, revision: str | None) -> None:
    migrate.restrict_sqlite_files(url)
    command.upgrade(migrate.alembic_config(url), revision or "head")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            current = ""
            for table_name, row in _read_rows(path):
                if table_name != current and batch:
                    conn.execute(insert(Base.metadata.tables[current]), batch)
                    batch = []
                current = table_name
                batch.append(_decoded(table_name, row))
                if len(batch) >= BATCH_ROWS:
                    conn.execute(insert(Base.metadata.tables[current]), batch)
                    batch = []
            if batch:
                conn.execute(insert(Base.metadata.tables[current]), batch)
            if backend_of(url) == "postgresql":
                _advance_sequences(conn)
    finally:
        engine.dispose()


def _advance_sequences(conn: Connection) -> None:
    """Move each serial column's sequence past the rows loaded (inserts named their values)."""
    for table in Base.metadata.sorted_tables:
        columns = list(table.primary_key.columns)
        for column in columns if len(columns) == 1 else []:
            if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                        f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                    )
                )


def is_empty(url: str) -> bool:
    """Tell whether the database at `url` holds no trainhub tables yet."""
    return not migrate.is_created(url)
