"""live_changes: what changed for open dashboard pages, in commit order of the change ids

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

import trainhub.server.db.tables


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('live_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('model_id', sa.String(length=20), nullable=True),
    sa.Column('user_id', sa.String(length=20), nullable=True),
    sa.Column('at', trainhub.server.db.tables.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('live_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_changes_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('live_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_changes_at'))
    op.drop_table('live_changes')
