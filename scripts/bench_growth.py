"""Benchmark the storage each household adds: a measured day, extrapolated to a year with the retention defaults.

Run from the repository root:

    .venv/bin/python scripts/bench_growth.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python scripts/bench_growth.py --households 20 --days 1                 # SQLite (file size only)

Creates `--households` households (each its own Amber site and Powerwall) in a fresh database and writes
`--days` simulated days for each with the demo's history writer (app/demo_history.py: the simulator's
prices stored as the sync stores them, a sync run every 5 minutes, pushes chosen by the real push rule and
built by the real tariff builder with their explanations, Amber usage and Tesla energy history as the
money import stores them, a force charge with its steps). It then measures each table's size on disk
(PostgreSQL: pg_total_relation_size, i.e. rows, indexes and TOAST; SQLite: the file) and prints, per
household:

    bytes per day per table -> kept after a year = per day x min(365, the table's retention in days)

with the retention defaults (sync runs 90 days, tariff pushes 365, prices 400, usage and energy 1,100;
call counts are not purged), and the database at 10,000 households after a year, extrapolated from the
measured day(s). Not a test: it prints figures and exits 0.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench_sync import create_users, fresh_database, make_app, site_ids  # noqa: E402

UTC = timezone.utc
# What each table holds per household and how long it is kept (None: never purged).
GROUPS = {
    "prices": ("price_intervals", "price_digests"),
    "runs": ("sync_runs", "sync_states", "api_call_counts"),
    "pushes": ("tariff_pushes",),
    "usage": ("usage_intervals", "energy_intervals", "money_imports"),
}


def retention_days(config) -> dict[str, int | None]:
    return {
        "price_intervals": config["PRICE_RETENTION_DAYS"],
        "sync_runs": config["SYNC_RUN_RETENTION_DAYS"],
        "tariff_pushes": config["TARIFF_PUSH_RETENTION_DAYS"],
        "usage_intervals": config.get("MONEY_RETENTION_DAYS"),
        "energy_intervals": config.get("MONEY_RETENTION_DAYS"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=20)
    parser.add_argument("--days", type=int, default=1, help="simulated days written per household")
    parser.add_argument("--database-url", help="PostgreSQL server to create a fresh database on (default SQLite)")
    parser.add_argument("--scale", type=int, default=10_000, help="households to extrapolate to")
    args = parser.parse_args()

    from sqlalchemy import text

    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp_name:
        tmp = Path(tmp_name)
        with fresh_database(args.database_url, tmp) as database_url:
            app = make_app(database_url, tmp, "http://127.0.0.1:9", lambda: datetime.now(UTC))
            create_users(app, args.households, site_ids(args.households))
            from app.demo_history import backfill_week
            from app.extensions import db
            from app.models import Household

            now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
            started = time.perf_counter()
            with app.app_context():
                for household_id in range(1, args.households + 1):
                    backfill_week(db.session.get(Household, household_id), now, days=args.days)
                    db.session.remove()
                written = time.perf_counter() - started
                postgres = db.engine.dialect.name == "postgresql"
                tables = [t for group in GROUPS.values() for t in group]
                sizes: dict[str, int] = {}
                rows: dict[str, int] = {}
                with db.engine.connect() as conn:
                    for table in tables:
                        rows[table] = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                        if postgres:
                            sizes[table] = conn.execute(text("SELECT pg_total_relation_size(:t)"), {"t": table}).scalar()
                    pushes = conn.execute(text("SELECT count(*) FROM tariff_pushes")).scalar()
                keep = retention_days(app.config)
                db.engine.dispose()
            per_day_households = args.households * args.days
            print(f"{args.households} households x {args.days} simulated day(s) on {'PostgreSQL' if postgres else 'SQLite'} "
                  f"(written in {written:.1f} s); {pushes / per_day_households:.1f} pushes and "
                  f"{rows['sync_runs'] / per_day_households:.0f} sync runs per household per day")
            if not postgres:
                size = Path(database_url.removeprefix("sqlite:///")).stat().st_size
                print(f"  SQLite file {size / 1e6:.1f} MB = {size / per_day_households / 1e3:.0f} KB per household per day, "
                      "all tables (run with --database-url for the table by table figures)")
                return 0
            total_year = 0.0
            parts = []
            for group, group_tables in GROUPS.items():
                year = 0.0
                for table in group_tables:
                    if table not in sizes:
                        continue
                    if not rows[table]:
                        print(f"  {table:18s} no rows written by the history writer (an empty table's pages are not growth)")
                        continue
                    per_day = sizes[table] / per_day_households
                    days = keep.get(table)
                    kept = min(365, days) if days else 365
                    if table in ("sync_states", "price_digests", "money_imports"):
                        kept = 1  # one row (or a few) per household, not per day
                    year += per_day * kept
                    print(f"  {table:18s} {rows[table] / per_day_households:8.0f} rows {per_day / 1e3:9.1f} KB per household-day "
                          f"x {kept} day(s) kept = {per_day * kept / 1e6:8.2f} MB")
                parts.append(f"{group} {year / 1e6:.1f} MB")
                total_year += year
            print(f"each household adds {total_year / 1e6:.0f} MB per year with the retention defaults "
                  f"(runs {keep['sync_runs']} d, pushes {keep['tariff_pushes']} d, prices {keep['price_intervals']} d, "
                  f"usage and energy {keep.get('usage_intervals') or 'all'} d): {', '.join(parts)}")
            print(f"at {args.scale:,} households after a year: about {total_year * args.scale / 1e9:.0f} GB "
                  f"(extrapolated from {args.days} measured day(s) of {args.households} households; PostgreSQL sizes "
                  "with indexes and TOAST, before autovacuum reuse)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
