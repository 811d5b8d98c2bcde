"""force_sessions.updated_at (the last step, so a session whose process died can be taken over) and
cancel_requested_by (a cancel that arrives while another process is still starting the session)

Existing sessions get their last known time: when they ended, else when they started.

Revision ID: 0010_force_recovery
Revises: 0009_db_heartbeat
Create Date: 2026-12-04 01:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_force_recovery'
down_revision = '0009_db_heartbeat'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('force_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('cancel_requested_by', sa.String(length=254), nullable=True))
    op.execute("UPDATE force_sessions SET updated_at = COALESCE(ended_at, started_at)")
    with op.batch_alter_table('force_sessions', schema=None) as batch_op:
        batch_op.alter_column('updated_at', existing_type=sa.DateTime(), nullable=False)


def downgrade():
    with op.batch_alter_table('force_sessions', schema=None) as batch_op:
        batch_op.drop_column('cancel_requested_by')
        batch_op.drop_column('updated_at')
