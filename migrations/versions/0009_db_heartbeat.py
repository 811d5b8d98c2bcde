"""heartbeats: /healthz writes one small row, so a database that can no longer write (disk full, read-only)
answers 503 instead of ok

Revision ID: 0009_db_heartbeat
Revises: 0008_founder_price_index
Create Date: 2026-12-04 01:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0009_db_heartbeat'
down_revision = '0008_founder_price_index'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'heartbeats',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('beat_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_heartbeats')),
    )


def downgrade():
    op.drop_table('heartbeats')
