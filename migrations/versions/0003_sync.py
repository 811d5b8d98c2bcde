"""Sync: state, runs, tariff pushes, price history, API call counts, scheduler lease, sync preferences

Revision ID: 0003_sync
Revises: 0002_connections
Create Date: 2026-11-24 03:32:01.693883

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0003_sync'
down_revision = '0002_connections'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('price_intervals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('amber_site_id', sa.String(length=64), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('start_at', sa.DateTime(), nullable=False),
    sa.Column('duration_minutes', sa.SmallInteger(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('per_kwh', sa.Float(), nullable=False),
    sa.Column('spot_per_kwh', sa.Float(), nullable=True),
    sa.Column('advanced_low', sa.Float(), nullable=True),
    sa.Column('advanced_predicted', sa.Float(), nullable=True),
    sa.Column('advanced_high', sa.Float(), nullable=True),
    sa.Column('estimate', sa.Boolean(), nullable=False),
    sa.Column('spike_status', sa.String(length=16), nullable=False),
    sa.Column('descriptor', sa.String(length=16), nullable=True),
    sa.Column('renewables', sa.Float(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_intervals')),
    sa.UniqueConstraint('amber_site_id', 'channel', 'start_at', 'duration_minutes', name='uq_price_intervals_key')
    )
    with op.batch_alter_table('price_intervals', schema=None) as batch_op:
        batch_op.create_index('ix_price_intervals_site_start', ['amber_site_id', 'start_at'], unique=False)

    op.create_table('scheduler_leases',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('acquired_at', sa.DateTime(), nullable=False),
    sa.Column('renewed_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('last_tick_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_scheduler_leases'))
    )
    op.create_table('api_call_counts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('service', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=48), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('billable', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_call_counts_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_call_counts')),
    sa.UniqueConstraint('user_id', 'day', 'service', 'kind', name='uq_api_call_counts_key')
    )
    op.create_table('sync_states',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('last_success_at', sa.DateTime(), nullable=True),
    sa.Column('last_readback_at', sa.DateTime(), nullable=True),
    sa.Column('fallback_active', sa.Boolean(), nullable=False),
    sa.Column('fallback_since', sa.DateTime(), nullable=True),
    sa.Column('export_protection_active', sa.Boolean(), nullable=False),
    sa.Column('export_rule_before', sa.String(length=16), nullable=True),
    sa.Column('export_rule_changed_at', sa.DateTime(), nullable=True),
    sa.Column('tesla_retry_after', sa.DateTime(), nullable=True),
    sa.Column('tesla_blocked_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sync_states_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_sync_states'))
    )
    op.create_table('tariff_pushes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('tesla_site_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('tariff', sa.JSON(), nullable=False),
    sa.Column('tariff_hash', sa.String(length=64), nullable=False),
    sa.Column('explanation', sa.JSON(), nullable=True),
    sa.Column('accepted', sa.Boolean(), nullable=False),
    sa.Column('tesla_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tariff_pushes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tariff_pushes'))
    )
    with op.batch_alter_table('tariff_pushes', schema=None) as batch_op:
        batch_op.create_index('ix_tariff_pushes_user_id_created_at', ['user_id', 'created_at'], unique=False)

    op.create_table('sync_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('tick_at', sa.DateTime(), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('amber_calls', sa.Integer(), nullable=False),
    sa.Column('tesla_calls', sa.Integer(), nullable=False),
    sa.Column('pushed', sa.Boolean(), nullable=False),
    sa.Column('push_latency_ms', sa.Integer(), nullable=True),
    sa.Column('tariff_push_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("outcome IN ('pushed', 'unchanged', 'skipped', 'failed')", name=op.f('ck_sync_runs_outcome_valid')),
    sa.ForeignKeyConstraint(['tariff_push_id'], ['tariff_pushes.id'], name=op.f('fk_sync_runs_tariff_push_id_tariff_pushes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sync_runs_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index('ix_sync_runs_user_id_started_at', ['user_id', 'started_at'], unique=False)

    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_threshold_cents', sa.Float(), server_default='0.5', nullable=False))
        batch_op.add_column(sa.Column('export_protection', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('export_protection_rule', sa.String(length=10), server_default='never', nullable=False))
        batch_op.create_check_constraint(
            op.f('ck_user_settings_export_protection_rule_valid'), "export_protection_rule IN ('never', 'pv_only')"
        )
        batch_op.create_check_constraint(
            op.f('ck_user_settings_change_threshold_cents_valid'), "change_threshold_cents >= 0"
        )



def downgrade():
    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_user_settings_change_threshold_cents_valid'), type_='check')
        batch_op.drop_constraint(op.f('ck_user_settings_export_protection_rule_valid'), type_='check')
        batch_op.drop_column('export_protection_rule')
        batch_op.drop_column('export_protection')
        batch_op.drop_column('change_threshold_cents')

    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_user_id_started_at')

    op.drop_table('sync_runs')
    with op.batch_alter_table('tariff_pushes', schema=None) as batch_op:
        batch_op.drop_index('ix_tariff_pushes_user_id_created_at')

    op.drop_table('tariff_pushes')
    op.drop_table('sync_states')
    op.drop_table('api_call_counts')
    op.drop_table('scheduler_leases')
    with op.batch_alter_table('price_intervals', schema=None) as batch_op:
        batch_op.drop_index('ix_price_intervals_site_start')

    op.drop_table('price_intervals')
