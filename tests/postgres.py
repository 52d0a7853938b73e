"""PostgreSQL for tests: whole databases, and the newest schema laid into a fresh one quickly.

`postgres_databases()` hands out fresh databases (`t_<hex>`) for the duration of a block and drops
every one of them at its end, with the connections still open to them (`WITH (FORCE)`), so a
failed test or a server that is still running leaves nothing behind.
"""

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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
