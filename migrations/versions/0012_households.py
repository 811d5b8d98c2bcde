"""Households: the unit of control. Every account becomes the owner of a household holding its connections,
settings, state, runs, pushes and force sessions; one Powerwall belongs to at most one household.

Each account's household gets the account's id, so every per-account row keeps its key: the column
`user_id` is renamed `household_id` and points at `households` instead of `users`. Where two accounts
controlled one Powerwall, the household whose push Tesla accepted last keeps it; the other's sync is
turned off, its site id moved into the household's history, and both households get a notice. Nothing
is deleted.

Revision ID: 0012_households
Revises: 0011_price_refusals
Create Date: 2026-12-04 02:30:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_households'
down_revision = '0011_price_refusals'
branch_labels = None
depends_on = None

# table -> (indexes to rename: old name, new name, columns, options), (unique constraints: old, new, columns)
TABLES = {
    "user_settings": ([], [("uq_user_settings_user_id", "uq_user_settings_household_id", ["household_id"])]),
    "service_status": (
        [("ix_service_status_user_id", "ix_service_status_household_id", ["household_id"], {})],
        [("uq_service_status_user_service", "uq_service_status_household_service", ["household_id", "service"])],
    ),
    "sync_states": ([], []),
    "sync_runs": ([("ix_sync_runs_user_id_started_at", "ix_sync_runs_household_id_started_at", ["household_id", "started_at"], {})], []),
    "tariff_pushes": (
        [("ix_tariff_pushes_user_id_created_at", "ix_tariff_pushes_household_id_created_at", ["household_id", "created_at"], {})], []
    ),
    "api_call_counts": ([], []),
    "tesla_readings": ([], []),
    "force_sessions": (
        [
            ("ix_force_sessions_user_id", "ix_force_sessions_household_id", ["household_id"], {}),
            (
                "uq_force_sessions_one_live_per_user",
                "uq_force_sessions_one_live_per_household",
                ["household_id"],
                {
                    "unique": True,
                    "sqlite_where": sa.text("state IN ('starting', 'active', 'restoring')"),
                    "postgresql_where": sa.text("state IN ('starting', 'active', 'restoring')"),
                },
            ),
        ],
        [],
    ),
    "control_events": ([("ix_control_events_user_id_at", "ix_control_events_household_id_at", ["household_id", "at"], {})], []),
}


def _old_index_columns(columns):
    return ["user_id" if c == "household_id" else c for c in columns]


def upgrade():
    op.create_table(
        'households',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('notice', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_households')),
    )
    op.create_table(
        'household_members',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=12), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.CheckConstraint("role IN ('owner', 'operator', 'viewer')", name=op.f('ck_household_members_role_valid')),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_household_members_household_id_households'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_household_members_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_household_members')),
        sa.UniqueConstraint('household_id', 'user_id', name='uq_household_members_household_user'),
    )
    op.create_index('ix_household_members_user_id', 'household_members', ['user_id'], unique=False)
    op.create_table(
        'household_invitations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('role', sa.String(length=12), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('invited_by', sa.String(length=254), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.CheckConstraint("role IN ('owner', 'operator', 'viewer')", name=op.f('ck_household_invitations_role_valid')),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_household_invitations_household_id_households'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_household_invitations')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_household_invitations_token_hash')),
    )
    op.create_index('ix_household_invitations_household_id', 'household_invitations', ['household_id'], unique=False)
    op.create_table(
        'household_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('household_id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=254), nullable=False),
        sa.Column('action', sa.String(length=48), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['household_id'], ['households.id'], name=op.f('fk_household_events_household_id_households'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_household_events')),
    )
    op.create_index('ix_household_events_household_id_at', 'household_events', ['household_id', 'at'], unique=False)

    # One household per account, with the account's id, its owner.
    op.execute(
        "INSERT INTO households (id, name, created_at) "
        "SELECT id, substr(email || '''s household', 1, 120), created_at FROM users"
    )
    op.execute(
        "INSERT INTO household_members (household_id, user_id, role, created_at) "
        "SELECT id, id, 'owner', created_at FROM users ORDER BY id"
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("SELECT setval(pg_get_serial_sequence('households', 'id'), COALESCE((SELECT max(id) FROM households), 0) + 1, false)")

    for table, (indexes, uniques) in TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for old, _new, columns, options in indexes:
                batch_op.drop_index(old, **({k: v for k, v in options.items() if k.endswith("_where")}))
            for old, _new, _columns in uniques:
                batch_op.drop_constraint(old, type_='unique')
            batch_op.drop_constraint(f'fk_{table}_user_id_users', type_='foreignkey')
            batch_op.alter_column('user_id', new_column_name='household_id', existing_type=sa.Integer(), existing_nullable=False)
        # A second pass: SQLite's batch copy knows the new column name only once the first is done.
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(f'fk_{table}_household_id_households', 'households', ['household_id'], ['id'], ondelete='CASCADE')
            for old, new, columns, options in indexes:
                batch_op.create_index(new, columns, **options)
            for old, new, columns in uniques:
                batch_op.create_unique_constraint(new, columns)

    with op.batch_alter_table('force_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('started_by', sa.String(length=254), nullable=True))
    with op.batch_alter_table('control_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor', sa.String(length=254), nullable=True))
    # Before households only the account itself could start its sessions.
    op.execute("UPDATE force_sessions SET started_by = (SELECT email FROM users WHERE users.id = force_sessions.household_id)")

    _one_controller_per_powerwall(bind)
    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_user_settings_tesla_site_id', ['tesla_site_id'])


def _one_controller_per_powerwall(bind) -> None:
    """Where several households hold one Tesla site: the latest accepted push keeps it, the others let go."""
    shared = bind.execute(sa.text(
        "SELECT tesla_site_id FROM user_settings WHERE tesla_site_id IS NOT NULL GROUP BY tesla_site_id HAVING count(*) > 1"
    )).scalars().all()
    now = bind.execute(sa.text("SELECT CURRENT_TIMESTAMP")).scalar()
    for site in shared:
        holders = bind.execute(sa.text(
            "SELECT s.household_id, u.email, "
            "(SELECT max(p.created_at) FROM tariff_pushes p WHERE p.household_id = s.household_id "
            " AND p.tesla_site_id = s.tesla_site_id AND p.accepted = :yes) AS last_push "
            "FROM user_settings s JOIN users u ON u.id = s.household_id WHERE s.tesla_site_id = :site"
        ), {"site": site, "yes": True}).all()
        # The latest accepted push wins; without any, the oldest account (lowest id). (A row's last_push is
        # a string on SQLite and a datetime on PostgreSQL: they compare correctly among themselves; the
        # first key keeps a missing one from ever being compared with a present one.)
        winner = max(holders, key=lambda h: (h.last_push is not None, h.last_push or "", -h.household_id))
        losers = [h for h in holders if h.household_id != winner.household_id]
        for loser in losers:
            bind.execute(sa.text(
                "UPDATE user_settings SET tesla_site_id = NULL, sync_enabled = :no WHERE household_id = :h"
            ), {"h": loser.household_id, "no": False})
            bind.execute(sa.text(
                "UPDATE households SET notice = :n WHERE id = :h"
            ), {"h": loser.household_id, "n": (
                f"This Powerwall (Tesla site {site}) is now controlled by the household of {winner.email}, which pushed to it "
                "last; a Powerwall has one controller. Your sync was turned off and nothing was deleted: ask "
                f"{winner.email} to invite you, then you see and control it there."
            )})
            bind.execute(sa.text(
                "INSERT INTO household_events (household_id, at, actor, action, message) VALUES (:h, :at, 'upgrade', 'site_released', :m)"
            ), {"h": loser.household_id, "at": now, "m": f"Tesla site {site} released to the household of {winner.email}; sync turned off."})
        names = ", ".join(h.email for h in losers)
        bind.execute(sa.text("UPDATE households SET notice = :n WHERE id = :h"), {"h": winner.household_id, "n": (
            f"{names} had also connected this Powerwall (Tesla site {site}); their sync was turned off so that only "
            "this household controls it. Invite them under Household to share it."
        )})


def downgrade():
    with op.batch_alter_table('user_settings', schema=None) as batch_op:
        batch_op.drop_constraint('uq_user_settings_tesla_site_id', type_='unique')
    with op.batch_alter_table('control_events', schema=None) as batch_op:
        batch_op.drop_column('actor')
    with op.batch_alter_table('force_sessions', schema=None) as batch_op:
        batch_op.drop_column('started_by')
    # Rows of households that are not an account's own cannot go back: the rest keep their key.
    for table in TABLES:
        op.execute(f"DELETE FROM {table} WHERE household_id NOT IN (SELECT id FROM users)")
    for table, (indexes, uniques) in TABLES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _old, new, _columns, options in indexes:
                batch_op.drop_index(new, **({k: v for k, v in options.items() if k.endswith("_where")}))
            for _old, new, _columns in uniques:
                batch_op.drop_constraint(new, type_='unique')
            batch_op.drop_constraint(f'fk_{table}_household_id_households', type_='foreignkey')
            batch_op.alter_column('household_id', new_column_name='user_id', existing_type=sa.Integer(), existing_nullable=False)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(f'fk_{table}_user_id_users', 'users', ['user_id'], ['id'], ondelete='CASCADE')
            for old, _new, columns, options in indexes:
                batch_op.create_index(old, _old_index_columns(columns), **options)
            for old, _new, columns in uniques:
                batch_op.create_unique_constraint(old, _old_index_columns(columns))
    op.drop_index('ix_household_events_household_id_at', table_name='household_events')
    op.drop_table('household_events')
    op.drop_index('ix_household_invitations_household_id', table_name='household_invitations')
    op.drop_table('household_invitations')
    op.drop_index('ix_household_members_user_id', table_name='household_members')
    op.drop_table('household_members')
    op.drop_table('households')
