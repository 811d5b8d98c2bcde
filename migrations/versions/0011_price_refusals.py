"""sync_runs.refused_prices: the Amber intervals a run refused as impossible, and why (for the dashboard)

Revision ID: 0011_price_refusals
Revises: 0010_force_recovery
Create Date: 2026-12-04 01:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_price_refusals'
down_revision = '0010_force_recovery'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused_prices', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_column('refused_prices')
