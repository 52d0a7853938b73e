"""models.best_metric: the highest main metric of a model's epochs, kept by every metrics write

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

MAIN_METRIC = "metrics/mAP50-95(B)"  # as db/metrics.py names it


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('best_metric', sa.Float(), nullable=True))
    # the models that have epochs get their best so far (once; later writes keep it up to date)
    models = sa.table('models', sa.column('seq', sa.Integer), sa.column('best_metric', sa.Float))
    metrics = sa.table('metrics', sa.column('model_seq', sa.Integer), sa.column('values', sa.Text))
    document: sa.ColumnElement[Any]
    if op.get_bind().dialect.name == "postgresql":
        document = sa.cast(metrics.c['values'], postgresql.JSONB)
    else:
        document = sa.type_coerce(metrics.c['values'], sa.JSON)
    best = (
        sa.select(sa.func.max(document[MAIN_METRIC].as_float()))
        .where(metrics.c.model_seq == models.c.seq)
        .scalar_subquery()
    )
    op.execute(models.update().values(best_metric=best))


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('best_metric')
