"""PLACEHOLDER (owned by the force-recovery work): columns force sessions need to be taken over after a crash

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
    pass


def downgrade():
    pass
