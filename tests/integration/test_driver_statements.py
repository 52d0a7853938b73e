"""The hot writes run on SQLite's driver (db/driver.py) behave exactly as their Core form.

Each statement is run both ways on one database, for two models side by side: through
`Statement` and through SQLAlchemy Core (`conn.execute(statement.core, ...)`), then the stored
rows are read back raw from the driver and compared, times included (a time on a whole second,
and one given in another time zone, are where a hand-made format would differ from
SQLAlchemy's). Rows returned are compared the same way, and the driver's errors must come out
as SQLAlchemy's. On PostgreSQL a `Statement` runs as Core, so there the comparisons only check
that both calls agree; the SQLite runs are the ones that test the driver.
"""

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, bindparam, make_url, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from tests.factories import create_model as create_model_over_http
from tests.factories import create_users, error
from tests.testclient import TestClient
from trainhub.server.db import changes, ingest
from trainhub.server.db.driver import Statement
from trainhub.server.db.engine import Database
from trainhub.server.db.tables import ModelRow, utcnow
from trainhub.server.services.models import create_model
from trainhub.server.settings import Settings
from trainhub.server.state import hub_state

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
        conn.execute(update(ModelRow).where(ModelRow.id == first_id).values(deleted_at=utcnow()))
        for model_id in (first_id, second_id):  # a bool, an aware datetime, None: typed alike
            by_driver = ingest._MODEL.rows(conn, {"id": model_id})
            by_core = [tuple(row) for row in conn.execute(ingest._MODEL.core, {"id": model_id})]
            assert by_driver == by_core and len(by_driver) == 1
        assert ingest.models_by_id(conn, [first_id])[first_id].deleted


def test_a_lookup_begins_the_transaction_as_core_would(db: Database) -> None:
    _, _, first_id, _ = two_models(db)
    with db.reader.connect() as conn:
        assert not conn.in_transaction()
        assert first_id in ingest.models_by_id(conn, [first_id])
        assert conn.in_transaction()  # what follows reads the same snapshot


def test_a_driver_error_is_raised_as_sqlalchemys(db: Database) -> None:
    unknown_model = {"model_seq": 10**9, "epoch": 0, "values": "{}", "updated_at": utcnow()}
    with pytest.raises(IntegrityError), db.begin() as conn:  # no such model: a foreign key
        ingest._INSERTS[db.writer.dialect.name].rows_many(conn, [unknown_model])
    with pytest.raises(IntegrityError), db.begin() as conn:
        ingest._INSERTS[db.writer.dialect.name].rows(conn, unknown_model)


def test_a_statement_that_needs_more_of_core_is_refused_on_sqlite(db: Database) -> None:
    expanding = Statement(
        select(ModelRow.seq).where(ModelRow.id.in_(bindparam("ids", expanding=True)))
    )
    with db.begin() as conn:
        if conn.dialect.name != "sqlite":
            assert expanding.rows(conn, {"ids": ["x"]}) == []  # Core runs it
            return
        with pytest.raises(TypeError, match="no expanding IN list"):
            expanding.rows(conn, {"ids": ["x"]})


def lock_sqlite(settings: Settings) -> sqlite3.Connection:
    """Take SQLite's write lock from a connection of another "process"."""
    path = make_url(settings.resolved_database_url()).database
    assert path
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@SQLITE_ONLY  # SQLite's write lock; on PostgreSQL the statements run as Core
def test_a_locked_database_is_raised_as_sqlalchemys_operational_error(
    db: Database, settings: Settings
) -> None:
    with db.writer.connect() as conn:  # the pool's one writer connection: wait 50 ms, not 10 s
        conn.exec_driver_sql("PRAGMA busy_timeout = 50")
    holder = lock_sqlite(settings)
    try:
        with pytest.raises(OperationalError, match="locked"), db.begin():
            pass
    finally:
        holder.rollback()
        holder.close()
    with db.begin() as conn:  # and the writer works again once the lock is gone
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1


@SQLITE_ONLY
def test_a_locked_database_answers_503_with_retry_after(
    app: FastAPI, alice: TestClient, settings: Settings
) -> None:
    db = hub_state(app).db
    with db.writer.connect() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout = 50")
    holder = lock_sqlite(settings)
    try:
        response = alice.post("/v1/models", json={"meta": {"name": "m"}})
    finally:
        holder.rollback()
        holder.close()
    assert "unavailable" in error(response, 503)
    assert response.headers["retry-after"] == "1"
    assert create_model_over_http(alice)  # served again once the lock is gone
