"""users.founder (one first administrator, even for two simultaneous sign-ups); price_intervals.start_at index

Existing accounts keep founder NULL: an install that has accounts has no first sign-up left to race.
The start_at index lets retention find old prices across every site without scanning the table.

Revision ID: 0008_founder_price_index
Revises: 0007_status_class_retention
Create Date: 2026-11-24 06:16:49.733696

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0008_founder_price_index'
down_revision = '0007_status_class_retention'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('price_intervals', schema=None) as batch_op:
        batch_op.create_index('ix_price_intervals_start_at', ['start_at'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('founder', sa.Boolean(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_users_founder'), ['founder'])


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_users_founder'), type_='unique')
        batch_op.drop_column('founder')

    with op.batch_alter_table('price_intervals', schema=None) as batch_op:
        batch_op.drop_index('ix_price_intervals_start_at')
