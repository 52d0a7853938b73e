"""PostgreSQL for tests: whole databases, and the newest schema laid into a fresh one quickly.

`postgres_databases()` hands out fresh databases (`t_<hex>`) for the duration of a block and drops
every one of them at its end, with the connections still open to them (`WITH (FORCE)`), so a
failed test or a server that is still running leaves nothing behind. `MigratedSchemas` hands out
schemas at the newest revision and empties each one a test gives back for the next test.
"""

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, MetaData, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from trainhub.server.db.migrate import upgrade

POSTGRES_URL = os.environ.get("TRAINHUB_TEST_DATABASE_URL")


@contextmanager
def postgres_databases(server_url: str) -> Iterator[Callable[[], str]]:
    """Yield a function that creates a fresh database on `server_url` and returns its URL."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        name = f"t_{secrets.token_hex(6)}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        made.append(name)
        return make_url(server_url).set(database=name).render_as_string(hide_password=False)

    try:
        yield make
    finally:
        with admin.connect() as conn:
            for name in made:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def schema_url(server_url: str, schema: str) -> str:
    """The URL of `server_url` with `schema` as the search path."""
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@contextmanager
def migrated_schema_script(server_url: str) -> Iterator[Callable[[str], str] | None]:
    """Yield a function that returns the SQL laying the newest schema into a given schema.

    The schema is migrated once, by the hub's own migrations, into a scratch schema; `pg_dump
    --schema-only` writes it out, and the scratch schema's name, random and long, is replaced by
    the one asked for. Laying that script costs a quarter of running every migration. Yields
    None when pg_dump is missing or fails (the hub then migrates each schema itself).
    """
    scratch = f"template_{secrets.token_hex(8)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    url = make_url(server_url)
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {scratch}"))
        upgrade(schema_url(server_url, scratch))
        with admin.connect() as conn:
            head = conn.execute(text(f"SELECT version_num FROM {scratch}.alembic_version")).one()[0]
        command = ["pg_dump", "--schema-only", "--no-owner", "--no-privileges", "-n", scratch]
        command += [f"--host={url.host or '127.0.0.1'}", f"--port={url.port or 5432}"]
        command += [f"--username={url.username or 'postgres'}", f"--dbname={url.database}"]
        environment = {**os.environ, "PGPASSWORD": url.password or ""}
        try:
            dump = subprocess.run(
                command, capture_output=True, text=True, env=environment, check=True
            )
        except (OSError, subprocess.CalledProcessError):
            yield None
            return
        # psql's meta-commands, comments and the schema itself (made by the caller) go
        statements = [
            line
            for line in dump.stdout.splitlines()
            if not line.startswith(("\\", "--", f"CREATE SCHEMA {scratch};"))
        ]
        script = (
            "\n".join(statements) + f"\nINSERT INTO {scratch}.alembic_version VALUES ('{head}');"
        )
        yield lambda schema: script.replace(scratch, schema)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {scratch} CASCADE"))
        admin.dispose()


# What a schema holds beyond its rows: its tables, columns, indexes, sequences, views,
# constraints, triggers and functions. A schema a test changed in any of these is not reused.
SHAPE = """
WITH classes AS MATERIALIZED (
    SELECT c.oid, c.relname, c.relkind FROM pg_class c
    WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = '{schema}')
)
SELECT md5(
    coalesce((SELECT string_agg(
                  relname::text || ':' || relkind::text || ':' || coalesce(
                      (SELECT string_agg(a.attname::text || ':'
                                         || format_type(a.atttypid, a.atttypmod),
                                         ',' ORDER BY a.attnum)
                       FROM pg_attribute a  -- by its index, per class: never the whole catalog
                       WHERE a.attrelid = classes.oid AND a.attnum > 0 AND NOT a.attisdropped),
                      ''),
                  ';' ORDER BY relname)
              FROM classes), '')
    || '|' || coalesce((SELECT string_agg(conname::text || ':' || contype::text, ','
                                          ORDER BY conname)
                        FROM pg_constraint WHERE connamespace =
                            (SELECT oid FROM pg_namespace WHERE nspname = '{schema}')), '')
    || '|' || (SELECT count(*) FROM pg_trigger WHERE tgrelid IN (SELECT oid FROM classes))::text
    || '|' || (SELECT count(*) FROM pg_proc WHERE pronamespace =
                   (SELECT oid FROM pg_namespace WHERE nspname = '{schema}'))::text
    || '|' || coalesce((SELECT string_agg(version_num, ',') FROM {schema}.alembic_version), '')
)
"""


class MigratedSchemas:
    """Hand out PostgreSQL schemas that hold the newest schema, reusing those tests are done with.

    Laying the schema (`migrated_schema_script`) and dropping it costs the PostgreSQL server
    about 50 ms of CPU for every test; emptying the tables of a schema a test has finished with
    costs about 1 ms. A schema goes back to the pool only when its shape (tables, columns,
    indexes, constraints, triggers, functions, schema revision) is still the one laid, its rows
    are deleted and its sequences restarted; any other is dropped. `close()` drops them all.
    """

    def __init__(self, server_url: str, script: Callable[[str], str] | None) -> None:
        self.server_url = server_url
        self.script = script
        self.admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
        self.idle: list[str] = []
        self.laid_shape: str | None = None
        self.emptying: str | None = None  # the reset's SQL, with {schema} for the schema

    def take(self) -> str:
        """Return the name of an empty schema at the newest revision, reused or new."""
        if self.idle:
            return self.idle.pop()
        schema = f"t_{secrets.token_hex(6)}"
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
            if self.script is None:
                upgrade(schema_url(self.server_url, schema))
            else:
                conn.exec_driver_sql(self.script(schema))
            if self.laid_shape is None:
                self.laid_shape = self.shape(conn, schema)
                if self.laid_shape is None:
                    raise RuntimeError(f"the shape of the laid schema {schema} is unreadable")
                self.emptying = self.emptying_sql(conn, schema)
        return schema

    def give_back(self, schema: str) -> None:
        """Empty `schema` for the next test, or drop it if it cannot be reused as it is."""
        try:
            with self.admin.connect() as conn:
                if self.emptying is not None and self.shape(conn, schema) == self.laid_shape:
                    # one query, so one transaction (PostgreSQL runs a query of several
                    # statements as one); a lock a test left held fails it in 5 s
                    conn.exec_driver_sql(self.emptying.format(schema=schema))
                    self.idle.append(schema)
                    return
        except DBAPIError:
            pass  # a lock held by a connection the test left open, say: drop the schema
        self.drop(schema)

    def drop(self, schema: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))

    def close(self) -> None:
        while self.idle:
            self.drop(self.idle.pop())
        self.admin.dispose()

    @staticmethod
    def shape(conn: Connection, schema: str) -> str | None:
        try:
            return conn.exec_driver_sql(SHAPE.format(schema=schema)).scalar()
        except DBAPIError:
            return None  # no alembic_version table: not the schema laid

    @staticmethod
    def emptying_sql(conn: Connection, schema: str) -> str:
        """The statements that delete every row (children first) and restart every sequence."""
        metadata = MetaData()
        metadata.reflect(conn, schema=schema)
        tables = [t.name for t in reversed(metadata.sorted_tables) if t.name != "alembic_version"]
        sequences = conn.execute(
            text("SELECT sequencename FROM pg_sequences WHERE schemaname = :s"), {"s": schema}
        ).scalars()
        statements = ["SET LOCAL lock_timeout = '5s'"]
        statements += [f"DELETE FROM {{schema}}.{table}" for table in tables]
        statements += [f"ALTER SEQUENCE {{schema}}.{name} RESTART" for name in sequences]
        return ";\n".join(statements)


@contextmanager
def schema_pool(server_url: str) -> Iterator[MigratedSchemas]:
    """A pool of migrated schemas on `server_url` for a block; drops every one at its end."""
    with migrated_schema_script(server_url) as script:
        schemas = MigratedSchemas(server_url, script)
        try:
            yield schemas
        finally:
            schemas.close()
