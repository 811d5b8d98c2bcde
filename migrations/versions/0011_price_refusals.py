"""sync_runs.refused_prices: the Amber intervals a run refused as impossible, and why (for the dashboard);
tariff_pushes.answer_lost: a push whose answer was lost, read back before the next push

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
    with op.batch_alter_table('tariff_pushes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('answer_lost', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table('tariff_pushes', schema=None) as batch_op:
        batch_op.drop_column('answer_lost')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_column('refused_prices')
