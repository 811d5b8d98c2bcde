"""Sync claims: per household, the interval it is next due and the worker that claimed it, so several
worker processes on PostgreSQL share one tick (SYNC_MODE=claims; the single leader ignores the table);
and per Amber site a digest of the prices last stored, so an unchanged fetch writes nothing.

Revision ID: 0016_sync_claims
Revises: 0015_money
Create Date: 2026-12-04 05:10:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0016_sync_claims'
down_revision = '0015_money'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sync_claims',
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('due_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_by', sa.String(length=128), nullable=True),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_sync_claims_household_id_households'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('household_id', name=op.f('pk_sync_claims')),
    )
    op.create_index('ix_sync_claims_due_at', 'sync_claims', ['due_at'], unique=False)
    op.create_table(
        'price_digests',
        sa.Column('amber_site_id', sa.String(length=64), nullable=False),
        sa.Column('digests', sa.JSON(), nullable=False),
        sa.Column('stored_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('amber_site_id', name=op.f('pk_price_digests')),
    )


def downgrade():
    op.drop_table('price_digests')
    op.drop_index('ix_sync_claims_due_at', table_name='sync_claims')
    op.drop_table('sync_claims')
