"""Notifications: each person's Apprise targets (encrypted URLs, events, quiet hours), the households'
open problem episodes, and the outbox that delivers each message at least once.

Revision ID: 0014_notifications
Revises: 0013_sync_run_trigger
Create Date: 2026-12-04 02:55:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_notifications'
down_revision = '0013_sync_run_trigger'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'notification_targets',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('url_enc', sa.Text(), nullable=False),
        sa.Column('label', sa.String(length=80), nullable=False),
        sa.Column('events', sa.JSON(), nullable=True),
        sa.Column('quiet_start', sa.SmallInteger(), nullable=True),
        sa.Column('quiet_end', sa.SmallInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_error_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notification_targets_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_targets')),
    )
    op.create_index('ix_notification_targets_user_id', 'notification_targets', ['user_id'], unique=False)
    op.create_table(
        'household_problems',
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=48), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_household_problems_household_id_households'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('household_id', 'key', name=op.f('pk_household_problems')),
    )
    op.create_table(
        'notification_outbox',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('household_id', sa.Integer(), nullable=True),
        sa.Column('target_id', sa.Integer(), nullable=False),
        sa.Column('event', sa.String(length=32), nullable=False),
        sa.Column('dedupe_key', sa.String(length=255), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('safety', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_notification_outbox_household_id_households'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['target_id'], ['notification_targets.id'], name=op.f('fk_notification_outbox_target_id_notification_targets'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notification_outbox')),
        sa.UniqueConstraint('dedupe_key', name=op.f('uq_notification_outbox_dedupe_key')),
    )
    op.create_index('ix_notification_outbox_due', 'notification_outbox', ['delivered_at', 'next_attempt_at'], unique=False)
    op.create_index('ix_notification_outbox_target_id', 'notification_outbox', ['target_id'], unique=False)


def downgrade():
    op.drop_index('ix_notification_outbox_target_id', table_name='notification_outbox')
    op.drop_index('ix_notification_outbox_due', table_name='notification_outbox')
    op.drop_table('notification_outbox')
    op.drop_table('household_problems')
    op.drop_index('ix_notification_targets_user_id', table_name='notification_targets')
    op.drop_table('notification_targets')
