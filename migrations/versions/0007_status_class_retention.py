"""API call counts by HTTP status class; sync_runs.started_at index; sync_run_totals for retention

Existing api_call_counts rows get status_class 'unknown': nobody recorded how those calls ended.
Downgrading merges the status classes of each (user, day, service, kind) back into one row.

Revision ID: 0007_status_class_retention
Revises: 0006_sync_runs_push_index
Create Date: 2026-11-25 02:10:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_status_class_retention'
down_revision = '0006_sync_runs_push_index'
branch_labels = None
depends_on = None

STATUS_CLASSES = "status_class IN ('1xx', '2xx', '3xx', '4xx', '5xx', 'none', 'other', 'unknown')"


def upgrade():
    op.create_table('sync_run_totals',
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('purged', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("outcome IN ('pushed', 'unchanged', 'skipped', 'failed')", name=op.f('ck_sync_run_totals_outcome_valid')),
    sa.PrimaryKeyConstraint('outcome', name=op.f('pk_sync_run_totals'))
    )
    with op.batch_alter_table('api_call_counts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_class', sa.String(length=8), server_default='unknown', nullable=False))
        batch_op.drop_constraint('uq_api_call_counts_key', type_='unique')
        batch_op.create_unique_constraint('uq_api_call_counts_key', ['user_id', 'day', 'service', 'kind', 'status_class'])
        batch_op.create_check_constraint(op.f('ck_api_call_counts_status_class_valid'), STATUS_CLASSES)

    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index('ix_sync_runs_started_at', ['started_at'], unique=False)


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_runs_started_at')

    # One row per (user, day, service, kind) again: add the other classes' counts into the oldest row.
    same_key = (
        "o.user_id = api_call_counts.user_id AND o.day = api_call_counts.day "
        "AND o.service = api_call_counts.service AND o.kind = api_call_counts.kind"
    )
    op.execute(
        "UPDATE api_call_counts SET "
        f"calls = (SELECT SUM(o.calls) FROM api_call_counts o WHERE {same_key}), "
        f"billable = (SELECT SUM(o.billable) FROM api_call_counts o WHERE {same_key}) "
        "WHERE id IN (SELECT MIN(id) FROM api_call_counts GROUP BY user_id, day, service, kind HAVING COUNT(*) > 1)"
    )
    op.execute(
        "DELETE FROM api_call_counts WHERE id NOT IN "
        "(SELECT MIN(id) FROM api_call_counts GROUP BY user_id, day, service, kind)"
    )
    with op.batch_alter_table('api_call_counts', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_api_call_counts_status_class_valid'), type_='check')
        batch_op.drop_constraint('uq_api_call_counts_key', type_='unique')
        batch_op.create_unique_constraint('uq_api_call_counts_key', ['user_id', 'day', 'service', 'kind'])
        batch_op.drop_column('status_class')

    op.drop_table('sync_run_totals')
