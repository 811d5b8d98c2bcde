"""PLACEHOLDER (owned by the database-trouble work): heartbeat table for /healthz

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
    pass


def downgrade():
    pass
