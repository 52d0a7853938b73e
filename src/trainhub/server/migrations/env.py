"""Alembic environment: runs migrations against the URL set by trainhub.server.db.migrate."""

from alembic import context
from sqlalchemy import create_engine

from trainhub.server.db.tables import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None

engine = create_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
