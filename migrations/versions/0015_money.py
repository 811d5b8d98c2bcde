"""Money: Amber's metered usage per household, interval and channel; Tesla's energy history; when each
household was last imported; and optional fixed costs on the household's settings.

Revision ID: 0015_money
Revises: 0014_notifications
Create Date: 2026-12-04 04:55:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_money'
down_revision = '0014_notifications'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'usage_intervals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('site_id', sa.String(length=64), nullable=False),
        sa.Column('channel', sa.String(length=16), nullable=False),
        sa.Column('identifier', sa.String(length=16), nullable=False),
        sa.Column('start_at', sa.DateTime(), nullable=False),
        sa.Column('end_at', sa.DateTime(), nullable=False),
        sa.Column('billing_date', sa.Date(), nullable=False),
        sa.Column('kwh_micro', sa.BigInteger(), nullable=False),
        sa.Column('price_micro', sa.BigInteger(), nullable=False),
        sa.Column('cost_micro', sa.BigInteger(), nullable=False),
        sa.Column('quality', sa.String(length=12), nullable=False),
        sa.Column('imported_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("channel IN ('general', 'controlledLoad', 'feedIn')", name=op.f('ck_usage_intervals_channel_valid')),
        sa.CheckConstraint("quality IN ('estimated', 'billable')", name=op.f('ck_usage_intervals_quality_valid')),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_usage_intervals_household_id_households'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_intervals')),
        sa.UniqueConstraint('household_id', 'channel', 'identifier', 'start_at', name='uq_usage_intervals_slot'),
    )
    op.create_index('ix_usage_intervals_household_date', 'usage_intervals', ['household_id', 'billing_date'], unique=False)
    op.create_table(
        'energy_intervals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('start_at', sa.DateTime(), nullable=False),
        sa.Column('end_at', sa.DateTime(), nullable=False),
        sa.Column('grid_import_wh', sa.Float(), nullable=False),
        sa.Column('grid_export_wh', sa.Float(), nullable=False),
        sa.Column('battery_from_grid_wh', sa.Float(), nullable=False),
        sa.Column('battery_from_solar_wh', sa.Float(), nullable=False),
        sa.Column('battery_to_home_wh', sa.Float(), nullable=False),
        sa.Column('battery_to_grid_wh', sa.Float(), nullable=False),
        sa.Column('home_wh', sa.Float(), nullable=False),
        sa.Column('solar_wh', sa.Float(), nullable=False),
        sa.Column('imported_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_energy_intervals_household_id_households'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_energy_intervals')),
        sa.UniqueConstraint('household_id', 'start_at', name='uq_energy_intervals_slot'),
    )
    op.create_table(
        'money_imports',
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('last_run_at', sa.DateTime(), nullable=True),
        sa.Column('last_success_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('usage_rows', sa.Integer(), nullable=False),
        sa.Column('energy_rows', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_money_imports_household_id_households'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('household_id', name=op.f('pk_money_imports')),
    )
    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supply_charge_micro', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('membership_micro', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.drop_column('membership_micro')
        batch_op.drop_column('supply_charge_micro')
    op.drop_table('money_imports')
    op.drop_table('energy_intervals')
    op.drop_index('ix_usage_intervals_household_date', table_name='usage_intervals')
    op.drop_table('usage_intervals')
