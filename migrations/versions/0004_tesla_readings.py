"""Tesla readings cache for the dashboard

Revision ID: 0004_tesla_readings
Revises: 0003_sync
Create Date: 2026-11-24 03:43:13.396856

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_tesla_readings'
down_revision = '0003_sync'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tesla_readings',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('tesla_site_id', sa.String(length=32), nullable=False),
    sa.Column('live_status', sa.JSON(), nullable=True),
    sa.Column('live_status_at', sa.DateTime(), nullable=True),
    sa.Column('site_info', sa.JSON(), nullable=True),
    sa.Column('site_info_at', sa.DateTime(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tesla_readings_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_tesla_readings'))
    )


def downgrade():
    op.drop_table('tesla_readings')
