"""Force control sessions, audit trail, discharge floor

Revision ID: 0005_force_control
Revises: 0004_tesla_readings
Create Date: 2026-11-24 03:55:06.351105

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0005_force_control'
down_revision = '0004_tesla_readings'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('force_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('tesla_site_id', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('minutes', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('ends_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.Column('end_reason', sa.Text(), nullable=True),
    sa.Column('saved_mode', sa.String(length=24), nullable=True),
    sa.Column('saved_reserve', sa.Float(), nullable=True),
    sa.Column('saved_export_rule', sa.String(length=16), nullable=True),
    sa.Column('saved_grid_charging', sa.Boolean(), nullable=True),
    sa.Column('saved_tariff', sa.JSON(), nullable=True),
    sa.Column('verification', sa.String(length=16), nullable=False),
    sa.Column('responded_at', sa.DateTime(), nullable=True),
    sa.Column('escalated_at', sa.DateTime(), nullable=True),
    sa.Column('last_checked_at', sa.DateTime(), nullable=True),
    sa.CheckConstraint("action IN ('force_charge', 'force_discharge')", name=op.f('ck_force_sessions_action_valid')),
    sa.CheckConstraint("state IN ('starting', 'active', 'restoring', 'ended', 'failed')", name=op.f('ck_force_sessions_state_valid')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_force_sessions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_force_sessions'))
    )
    with op.batch_alter_table('force_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_force_sessions_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_force_sessions_one_live_per_user', ['user_id'], unique=True, sqlite_where=sa.text("state IN ('starting', 'active', 'restoring')"), postgresql_where=sa.text("state IN ('starting', 'active', 'restoring')"))

    op.create_table('control_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('step', sa.String(length=48), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['session_id'], ['force_sessions.id'], name=op.f('fk_control_events_session_id_force_sessions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_control_events_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_control_events'))
    )
    with op.batch_alter_table('control_events', schema=None) as batch_op:
        batch_op.create_index('ix_control_events_user_id_at', ['user_id', 'at'], unique=False)

    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('discharge_floor_percent', sa.Integer(), server_default='20', nullable=False))
        batch_op.create_check_constraint(
            op.f('ck_user_settings_discharge_floor_percent_valid'),
            "discharge_floor_percent >= 0 AND discharge_floor_percent <= 100",
        )



def downgrade():
    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_settings_discharge_floor_percent_valid'), type_='check')
        batch_op.drop_column('discharge_floor_percent')

    with op.batch_alter_table('control_events', schema=None) as batch_op:
        batch_op.drop_index('ix_control_events_user_id_at')

    op.drop_table('control_events')
    with op.batch_alter_table('force_sessions', schema=None) as batch_op:
        batch_op.drop_index('uq_force_sessions_one_live_per_user', sqlite_where=sa.text("state IN ('starting', 'active', 'restoring')"), postgresql_where=sa.text("state IN ('starting', 'active', 'restoring')"))
        batch_op.drop_index(batch_op.f('ix_force_sessions_user_id'))

    op.drop_table('force_sessions')
