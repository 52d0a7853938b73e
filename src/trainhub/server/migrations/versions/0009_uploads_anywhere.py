"""resumable_uploads.state and last_part: an upload's bytes where every replica reaches them

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # an upload in progress keeps its file (local folder) and starts with no S3 state; one in a
    # replica's spool folder (S3) is lost: its offset points nowhere the new code looks, so it
    # is removed and its client starts again after a 404 (docs/decisions/0022)
    with op.batch_alter_table('resumable_uploads', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.JSON(), nullable=False, server_default=sa.text("'{}'")))
        batch_op.add_column(sa.Column('last_part', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('resumable_uploads', schema=None) as batch_op:
        batch_op.drop_column('last_part')
        batch_op.drop_column('state')
