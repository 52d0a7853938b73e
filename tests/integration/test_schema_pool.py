"""The pool of migrated PostgreSQL schemas that `database_url` hands to tests (tests/postgres.py).

A reused schema must look to the next test exactly like a new one: no rows, sequences from 1,
the same tables and revision; a schema a test changed must not come back.
"""

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.postgres import POSTGRES_URL, MigratedSchemas, schema_pool, schema_url
from trainhub.server.db import users as user_queries
from trainhub.server.db.engine import Database
from trainhub.server.db.migrate import schema_revisions

pytestmark = pytest.mark.skipif(
    POSTGRES_URL is None, reason="set TRAINHUB_TEST_DATABASE_URL to a PostgreSQL server"
)


@pytest.fixture
def pool() -> Iterator[MigratedSchemas]:
    assert POSTGRES_URL is not None
    with schema_pool(POSTGRES_URL) as schemas:
        yield schemas


def run(schema: str, sql: str) -> list[tuple]:
    assert POSTGRES_URL is not None
    engine = create_engine(schema_url(POSTGRES_URL, schema), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def fill(schema: str) -> None:
    """Store a user with a key and a live-updates row (a sequence), as a test would."""
    assert POSTGRES_URL is not None
    db = Database(schema_url(POSTGRES_URL, schema))
    try:
        with db.write() as session:
            user_queries.create_user(session, "carol", admin=False)
    finally:
        db.dispose()
    run(schema, "INSERT INTO live_changes (model_id, at) VALUES ('m', now())")


def test_a_schema_given_back_comes_back_empty_with_sequences_restarted(
    pool: MigratedSchemas,
) -> None:
    schema = pool.take()
    assert run(schema, "SELECT version_num FROM alembic_version") == [(schema_revisions()[1],)]
    fill(schema)
    first_seq = run(schema, "SELECT max(id) FROM live_changes")[0][0]
    pool.give_back(schema)

    assert pool.take() == schema
    assert run(schema, "SELECT count(*) FROM users") == [(0,)]
    assert run(schema, "SELECT count(*) FROM api_keys") == [(0,)]
    assert run(schema, "SELECT version_num FROM alembic_version") == [(schema_revisions()[1],)]
    fill(schema)
    assert run(schema, "SELECT max(id) FROM live_changes")[0][0] == first_seq


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE users ADD COLUMN extra integer",
        "DROP TABLE live_changes",
        "CREATE INDEX users_extra ON users (name, id)",
        "UPDATE alembic_version SET version_num = 'from_the_future'",
        "CREATE TABLE leftovers (id integer)",
    ],
)
def test_a_schema_whose_shape_a_test_changed_is_dropped(pool: MigratedSchemas, change: str) -> None:
    schema = pool.take()
    run(schema, change)
    pool.give_back(schema)
    assert run("public", f"SELECT 1 FROM pg_namespace WHERE nspname = '{schema}'") == []
    assert pool.take() != schema
