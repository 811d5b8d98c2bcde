"""Accounts, user settings and login throttles

Revision ID: 0001_accounts
Revises: 
Create Date: 2026-11-24 03:18:49.484674

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0001_accounts'
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('login_throttles',
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttles'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('is_disabled', sa.Boolean(), nullable=False),
    sa.Column('session_nonce', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('last_login_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('user_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('amber_token_enc', sa.Text(), nullable=True),
    sa.Column('amber_site_id', sa.String(length=64), nullable=True),
    sa.Column('teslemetry_token_enc', sa.Text(), nullable=True),
    sa.Column('tesla_access_token_enc', sa.Text(), nullable=True),
    sa.Column('tesla_refresh_token_enc', sa.Text(), nullable=True),
    sa.Column('tesla_token_expires_at', sa.DateTime(), nullable=True),
    sa.Column('tesla_region', sa.String(length=8), nullable=True),
    sa.Column('tesla_site_id', sa.String(length=32), nullable=True),
    sa.Column('site_timezone', sa.String(length=64), nullable=True),
    sa.Column('sync_enabled', sa.Boolean(), nullable=False),
    sa.Column('forecast_estimate', sa.String(length=10), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("forecast_estimate IN ('low', 'predicted', 'high')", name=op.f('ck_user_settings_forecast_estimate_valid')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_settings_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_user_settings')),
    sa.UniqueConstraint('user_id', name=op.f('uq_user_settings_user_id'))
    )


def downgrade():
    op.drop_table('user_settings')
    op.drop_table('users')
    op.drop_table('login_throttles')
