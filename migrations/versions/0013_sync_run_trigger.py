"""sync_runs.triggered_by: who started a sync ("schedule", a member's e-mail for Sync now, "command line")

Runs from before were either the scheduler's (tick_at set) or a person's: they are left empty and the
history says "schedule" for the first and "a person" for the second.

Revision ID: 0013_sync_run_trigger
Revises: 0012_households
Create Date: 2026-12-04 02:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_sync_run_trigger'
down_revision = '0012_households'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('triggered_by', sa.String(length=254), nullable=True))


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_column('triggered_by')
