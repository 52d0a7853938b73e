"""`upgrade` checks and migrates under a lock every trainhub process takes (db/migrate.py).

While another process holds the lock (here: the test), an upgrade waits; once it is released the
upgrade finds its way to the newest schema. Replicas started together therefore migrate once;
a start on a schema already current reads its revision without waiting for the lock
(tests/replicas/test_migrations.py shows it with real processes on PostgreSQL).
"""

import threading
import time

from trainhub.server.db import migrate


def test_an_upgrade_waits_for_the_lock_then_migrates(database_url: str) -> None:
    head = migrate.ScriptDirectory.from_config(migrate.alembic_config(database_url))
    migrate.restrict_sqlite_files(database_url)  # the SQLite file the lock is taken on
    done = threading.Event()
    with migrate.migration_lock(database_url):
        upgrade = threading.Thread(
            target=lambda: (migrate.upgrade(database_url), done.set()), daemon=True
        )
        upgrade.start()
        time.sleep(0.5)
        assert not done.is_set()  # waiting for the lock
        assert migrate.current_revision(database_url) is None
    upgrade.join(timeout=60)
    assert done.is_set()
    assert migrate.current_revision(database_url) == head.get_current_head()


def test_a_schema_already_current_is_found_so_without_waiting_for_the_lock(
    database_url: str,
) -> None:
    migrate.upgrade(database_url)
    done = threading.Event()
    with migrate.migration_lock(database_url):  # another process migrating something, say
        upgrade = threading.Thread(
            target=lambda: (migrate.upgrade(database_url), done.set()), daemon=True
        )
        upgrade.start()
        # a restart does not queue behind the lock: it reads the revision and returns
        assert done.wait(timeout=30), "an upgrade of a current schema waited for the lock"
    upgrade.join(timeout=5)
