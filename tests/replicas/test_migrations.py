"""Two replicas started at the same moment on an empty database migrate it once, together.

Nothing creates the tables first (no `trainhub db upgrade`, no `migrate` service): both replicas
find the database empty and start migrating at once. They reach PostgreSQL through a proxy that
holds their first connections until both have arrived (tests/replicas/proxy.py), so they really
do start together, however long each took to import. Both must come up healthy on a schema at
the newest revision, with one row in `alembic_version`.
"""

from pathlib import Path

import httpx
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.replicas.proxy import start_proxy
from tests.replicas.stack import start_replicas
from tests.s3 import Bucket
from tests.servers import assert_healthy, cli_create_user
from trainhub.server.db.migrate import alembic_config, current_revision, is_created
from trainhub.server.db.tables import Base


def test_two_replicas_started_together_on_an_empty_database_migrate_it_once(
    tmp_path: Path, postgres_database: str, s3_bucket: Bucket
) -> None:
    assert not is_created(postgres_database)
    head = ScriptDirectory.from_config(alembic_config(postgres_database)).get_current_head()
    postgres = make_url(postgres_database)
    with (
        start_proxy([(postgres.host or "127.0.0.1", postgres.port or 5432)], hold_until=2) as gate,
        start_replicas(
            tmp_path,
            postgres.set(port=gate.port).render_as_string(hide_password=False),
            s3_bucket,
            create_admin=False,
            extra_env={"TRAINHUB_LOG_LEVEL": "DEBUG"},  # the migration's own line is at DEBUG
        ) as replicas,
    ):
        for server in (replicas.a, replicas.b):
            assert_healthy(httpx.get(f"{server.url}/healthz", timeout=30))
        # each took the migration lock (src/trainhub/server/db/migrate.py): one migrated, the
        # other found the schema current
        logs = [server.log() for server in (replicas.a, replicas.b)]
        migrated = [log for log in logs if "migrating the database" in log]
        assert len(migrated) == 1, replicas.logs()
        assert "from schema (empty)" in migrated[0]
        for log in logs:
            assert "Traceback" not in log and "already exists" not in log, replicas.logs()
        assert current_revision(postgres_database) == head
        engine = create_engine(postgres_database)
        try:
            with engine.connect() as conn:
                versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            tables = set(inspect(engine).get_table_names())
        finally:
            engine.dispose()
        assert [row[0] for row in versions] == [head]
        assert tables == {*Base.metadata.tables, "alembic_version"}
        # and both serve it: the first user's key works on either
        key = cli_create_user(tmp_path / "cli", "admin", admin=True, env=replicas.env)
        for server in (replicas.a, replicas.b):
            answer = httpx.get(f"{server.url}/v1/models", headers={"x-api-key": key}, timeout=30)
            assert answer.status_code == 200, answer.text
