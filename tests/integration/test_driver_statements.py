"""The hot writes run on SQLite's driver (db/driver.py) store exactly what their Core form stores.

Each statement is run both ways on one database, for two models side by side: through
`Statement` (the driver's cursor on SQLite, Core on PostgreSQL) and through SQLAlchemy Core
(`conn.execute(statement.core, ...)`), then the stored rows are read back raw from the driver
and compared, times included (a time on a whole second, and one given in another time zone,
are where a hand-made format would differ from SQLAlchemy's).
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Connection, update

from tests.factories import create_users
from trainhub.server.db import changes, ingest
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow
from trainhub.server.services.models import create_model
from trainhub.server.settings import Settings

WHOLE_SECOND = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)
ELSEWHERE = datetime(2026, 12, 5, 10, 0, 0, 250, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    database = Database(settings.resolved_database_url())
    yield database
    database.dispose()


def raw(conn: Connection, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Return rows as the driver gives them, without SQLAlchemy's result processing."""
    placeholder = "?" if conn.dialect.name == "sqlite" else "%s"
    return [tuple(row) for row in conn.exec_driver_sql(sql.replace("?", placeholder), params)]


def two_models(db: Database) -> tuple[ingest.ModelAccess, ingest.ModelAccess, str, str]:
    users = create_users(db)
    first = create_model(db, users.bob.id, {"meta": {"name": "driver"}})
    second = create_model(db, users.bob.id, {"meta": {"name": "core"}})
    with db.begin() as conn:
        conn.execute(update(ModelRow).where(ModelRow.id == second.id).values(public=True))
        access = ingest.models_by_id(conn, [first.id, second.id])
    return access[first.id], access[second.id], first.id, second.id


def test_metrics_rows_are_stored_alike(db: Database) -> None:
    by_driver, by_core, _, _ = two_models(db)
    statement = ingest._INSERTS[db.writer.dialect.name]
    with db.begin() as conn:
        for access, run in ((by_driver, statement.rows_many), (by_core, None)):
            params = [
                {"model_seq": access.seq, "epoch": e, "values": '{"loss": 0.5}', "updated_at": at}
                for e, at in ((0, WHOLE_SECOND), (1, ELSEWHERE))
            ]
            if run is None:
                returned = [tuple(r) for r in conn.execute(statement.core, params)]
            else:
                returned = run(conn, params)
            assert returned == [(access.seq, 0), (access.seq, 1)]
            again = statement.rows_many(conn, params[:1])  # stored already: nothing returned
            assert again == []
        stored = {
            access.seq: raw(
                conn,
                'SELECT epoch, "values", updated_at FROM metrics WHERE model_seq = ? '
                "ORDER BY epoch",
                access.seq,
            )
            for access in (by_driver, by_core)
        }
    assert stored[by_driver.seq] == stored[by_core.seq]
    assert len(stored[by_driver.seq]) == 2


def test_model_updates_and_changes_are_stored_alike(db: Database) -> None:
    by_driver, by_core, driver_id, core_id = two_models(db)
    with db.begin() as conn:
        for access, driver in ((by_driver, True), (by_core, False)):
            params = [
                {"row_seq": access.seq, "newest": 4, "best": 0.25, "now": WHOLE_SECOND},
                {"row_seq": access.seq, "newest": 2, "best": None, "now": ELSEWHERE},
            ]
            if driver:
                ingest._TRAINING.run_many(conn, params)
            else:
                conn.execute(ingest._TRAINING.core, params)
        columns = "status, last_epoch, best_metric, updated_at"
        updated = [
            raw(conn, f"SELECT {columns} FROM models WHERE seq = ?", access.seq)
            for access in (by_driver, by_core)
        ]
        assert updated[0] == updated[1]
        assert updated[0][0][:3] == ("training", 4, 0.25)

        insert = changes._INSERT_MANY
        values = [
            {"model_id": model_id, "user_id": by_driver.owner_id, "at": at}
            for model_id, at in ((driver_id, WHOLE_SECOND), (core_id, ELSEWHERE))
        ]
        ids = [row[0] for row in insert.rows_many(conn, values)]
        ids += [row[0] for row in conn.execute(insert.core, values)]
        assert len(set(ids)) == 4 and ids == sorted(ids)
        noted = raw(
            conn,
            "SELECT model_id, user_id, at FROM live_changes WHERE id IN (?, ?, ?, ?) ORDER BY id",
            *ids,
        )
    assert noted[:2] == noted[2:]


def test_model_lookups_agree(db: Database) -> None:
    first, second, first_id, second_id = two_models(db)
    assert (first.public, second.public, first.deleted, first.status) == (
        False,
        True,
        False,
        "new",
    )
    with db.begin() as conn:
        rows = conn.execute(ingest._MODELS, {"ids": [first_id, second_id, "missing0000000000000"]})
        core = {
            row.id: ingest.ModelAccess(
                row.seq, row.owner_id, row.public, row.deleted_at is not None, row.status
            )
            for row in rows
        }
        found = ingest.models_by_id(conn, [second_id, first_id, "missing0000000000000"], lock=True)
    assert found == core == {first_id: first, second_id: second}


def test_a_lookup_begins_the_transaction_as_core_would(db: Database) -> None:
    _, _, first_id, _ = two_models(db)
    with db.reader.connect() as conn:
        assert not conn.in_transaction()
        assert first_id in ingest.models_by_id(conn, [first_id])
        assert conn.in_transaction()  # what follows reads the same snapshot
