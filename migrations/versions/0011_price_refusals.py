"""PLACEHOLDER (owned by the price-sanity work): where refused price intervals are recorded

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
    pass


def downgrade():
    pass
