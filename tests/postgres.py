"""Whole PostgreSQL databases for tests: CREATE DATABASE on the server of the test database URL.

`postgres_databases()` hands out fresh databases (`t_<hex>`) for the duration of a block and drops
every one of them at its end, with the connections still open to them (`WITH (FORCE)`), so a
failed test or a server that is still running leaves nothing behind.
"""

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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
