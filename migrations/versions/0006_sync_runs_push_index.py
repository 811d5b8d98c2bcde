"""Index sync_runs.tariff_push_id (the dashboard looks up a push's latency)

Revision ID: 0006_sync_runs_push_index
Revises: 0005_force_control
Create Date: 2026-11-24 04:38:51.191979

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_sync_runs_push_index'
down_revision = '0005_force_control'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_runs_tariff_push_id'), ['tariff_push_id'], unique=False)



def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sync_runs_tariff_push_id'))

