"""Service status, Tesla path and reported time zone, OAuth states, Tesla app keys and partner registrations

Revision ID: 0002_connections
Revises: 0001_accounts
Create Date: 2026-11-24 03:24:57.677045

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0002_connections'
down_revision = '0001_accounts'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('tesla_app_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('private_key_enc', sa.Text(), nullable=False),
    sa.Column('public_key_pem', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tesla_app_keys'))
    )
    op.create_table('tesla_partner_registrations',
    sa.Column('region', sa.String(length=8), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('attempted_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('region', name=op.f('pk_tesla_partner_registrations'))
    )
    op.create_table('oauth_states',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('state_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code_verifier_enc', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_oauth_states_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_states')),
    sa.UniqueConstraint('state_hash', name=op.f('uq_oauth_states_state_hash'))
    )
    with op.batch_alter_table('oauth_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_states_user_id'), ['user_id'], unique=False)

    op.create_table('service_status',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('service', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('via', sa.String(length=16), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('checked_at', sa.DateTime(), nullable=False),
    sa.CheckConstraint("state IN ('connected', 'attention', 'not_configured')", name=op.f('ck_service_status_state_valid')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_service_status_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_status')),
    sa.UniqueConstraint('user_id', 'service', name='uq_service_status_user_service')
    )
    with op.batch_alter_table('service_status', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_service_status_user_id'), ['user_id'], unique=False)

    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tesla_path', sa.String(length=16), server_default='teslemetry', nullable=False))
        batch_op.add_column(sa.Column('tesla_reported_timezone', sa.String(length=64), nullable=True))
        batch_op.create_check_constraint(
            op.f('ck_user_settings_tesla_path_valid'), "tesla_path IN ('teslemetry', 'fleet')"
        )


def downgrade():
    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_settings_tesla_path_valid'), type_='check')
        batch_op.drop_column('tesla_reported_timezone')
        batch_op.drop_column('tesla_path')

    with op.batch_alter_table('service_status', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_service_status_user_id'))

    op.drop_table('service_status')
    with op.batch_alter_table('oauth_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_states_user_id'))

    op.drop_table('oauth_states')
    op.drop_table('tesla_partner_registrations')
    op.drop_table('tesla_app_keys')
