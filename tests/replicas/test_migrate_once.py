"""Replicas started at the same moment on an empty PostgreSQL database migrate it once.

Three `trainhub server` processes start together on a fresh database (no `trainhub db upgrade`
before them): each takes the migration lock (src/trainhub/server/db/migrate.py), the first
migrates, the others find the schema current. All three come up healthy, the database is at the
newest revision, and exactly one log says it migrated.
"""

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from tests.replicas.failover_support import start_together
from trainhub.server.db.migrate import alembic_config

pytestmark = pytest.mark.e2e


def test_replicas_started_together_on_an_empty_database_migrate_it_once(
    tmp_path: Path, postgres_database: str
) -> None:
    env = {
        "TRAINHUB_DATABASE_URL": postgres_database,
        "TRAINHUB_CREATE_ADMIN": "false",
        "TRAINHUB_LOG_LEVEL": "DEBUG",  # the migration's own line is at DEBUG
    }
    servers = start_together([tmp_path / name / "data" for name in "abc"], env)
    try:
        logs = [server.log() for server in servers]
    finally:
        for server in servers:
            server.kill()
    migrated = [log for log in logs if "migrating the database" in log]
    assert len(migrated) == 1, logs
    assert "from schema (empty)" in migrated[0]
    for log in logs:
        assert "Traceback" not in log and "already exists" not in log and "duplicate" not in log
    engine = create_engine(postgres_database)
    try:
        with engine.connect() as conn:
            revisions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars()
            assert list(revisions) == [
                ScriptDirectory.from_config(alembic_config(postgres_database)).get_current_head()
            ]
    finally:
        engine.dispose()
