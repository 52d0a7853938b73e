"""Migrations that compute data from what is stored: run on a database with rows in it."""

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import MetaData, create_engine, select

from trainhub.server.db.migrate import alembic_config, upgrade


def test_0007_gives_each_model_the_best_main_metric_of_its_epochs(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "0006")
    engine = create_engine(database_url)
    tables = MetaData()
    tables.reflect(engine, only=["users", "models", "metrics"])
    users, models, metrics = (tables.tables[n] for n in ("users", "models", "metrics"))
    now = datetime(2026, 12, 4, tzinfo=UTC)
    model = {"status": "training", "public": False, "doc": {}, "created_at": now}
    with engine.begin() as conn:
        conn.execute(
            users.insert(), {"id": "u1", "name": "alice", "is_admin": False, "created_at": now}
        )
        conn.execute(
            models.insert(),
            [
                {**model, "seq": 1, "id": "m1", "owner_id": "u1", "name": "a", "updated_at": now},
                {**model, "seq": 2, "id": "m2", "owner_id": "u1", "name": "b", "updated_at": now},
                {**model, "seq": 3, "id": "m3", "owner_id": "u1", "name": "c", "updated_at": now},
            ],
        )
        conn.execute(
            metrics.insert(),
            [
                {
                    "model_seq": 1,
                    "epoch": 0,
                    "values": '{"metrics/mAP50-95(B)": 0.25}',
                    "updated_at": now,
                },
                {
                    "model_seq": 1,
                    "epoch": 1,
                    "values": '{"metrics/mAP50-95(B)": 0.5}',
                    "updated_at": now,
                },
                {
                    "model_seq": 1,
                    "epoch": 2,
                    "values": '{"metrics/mAP50-95(B)": 0.375}',
                    "updated_at": now,
                },
                {
                    "model_seq": 2,
                    "epoch": 0,
                    "values": '{"train/box_loss": 1.5}',
                    "updated_at": now,
                },
            ],
        )
    upgrade(database_url)
    tables = MetaData()
    tables.reflect(engine, only=["models"])
    with engine.connect() as conn:
        found = dict(
            conn.execute(
                select(tables.tables["models"].c.seq, tables.tables["models"].c.best_metric)
            ).all()
        )
    engine.dispose()
    assert found == {1: 0.5, 2: None, 3: None}
