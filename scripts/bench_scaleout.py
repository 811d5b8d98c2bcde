"""Benchmark the scale-out on PostgreSQL: real worker processes share one tick, one is killed mid-tick.

Run from the repository root:

    .venv/bin/python scripts/bench_scaleout.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python scripts/bench_scaleout.py --households 2000 --workers 4 --threads 8 --kill-after 0.3 --database-url ...

Creates a fresh PostgreSQL database with N households (default 10,000), each on its own Amber site and
its own Powerwall of the simulator (a subprocess, 100 ms added to every call, rate limits off, its clock
on real time), opens one interval for all of them (their sync claims, as the scheduler's leader does),
then starts `--workers` real `python -m app.sync.worker` processes (SYNC_MODE=claims) at once: that
moment is the interval's start. When `--kill-after` of the households are synced, one worker is
SIGKILLed in the middle of its batch. The script waits until every household has a run for the interval
(or `--timeout`), stops the workers with SIGTERM and prints:

- every household synced exactly once (runs per household for the interval: missing, duplicates);
- p50 / p95 / max from the interval's start to a household synced (its run recorded), the target being a
  p95 within 60 s; the killed worker's orphaned households and when they were taken over (after
  SYNC_CLAIM_TTL_SECONDS, default 150 s, inside the 5-minute tick);
- Amber calls per site (each fetched once), households per worker, the workers' CPU per household and
  peak RSS.

The interval is an hour long here (SCHEDULER_TICK_SECONDS=3600) so that a slow run on a small machine
does not roll into the next interval and sync everyone again; the claiming is the same. Not a test: it
prints figures and exits 0 (1 if a household was synced twice or never).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_sync  # noqa: E402
from bench_sync import child_cpu_seconds, child_peak_rss_mb, create_users, fresh_database, percentile, sim_post, site_ids  # noqa: E402

UTC = timezone.utc
PERIOD_SECONDS = 3600


def worker_env(database_url: str, data_dir: Path, base: str, secret: str, fernet: str, args) -> dict[str, str]:
    from app.simulator import identity

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER", "SYNC_", "GUNICORN_"))}
    env.update(identity.app_settings(base))
    env.update(
        APP_ENV="production", DATA_DIR=str(data_dir), DATABASE_URL=database_url, SECRET_KEY=secret,
        FERNET_ENCRYPTION_KEY=fernet, LOG_LEVEL="INFO",  # the workers' 'claimed N household(s)' lines are counted PYTHONUNBUFFERED="1", SCHEDULER="off",
        SCHEDULER_TICK_SECONDS=str(PERIOD_SECONDS), SCHEDULER_TICK_DELAY_SECONDS="0",
        SYNC_MODE="claims", SYNC_MAX_WORKERS=str(args.threads), SYNC_CLAIM_BATCH=str(args.batch or args.threads),
        SYNC_WORKER_POLL_SECONDS="1",
    )
    if args.ttl:
        env["SYNC_CLAIM_TTL_SECONDS"] = str(args.ttl)
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--households", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4, help="worker processes")
    parser.add_argument("--threads", type=int, default=8,
                        help="SYNC_MAX_WORKERS of each worker process (its pool keeps threads + 8 connections open)")
    parser.add_argument("--batch", type=int, default=0, help="SYNC_CLAIM_BATCH (default: --threads)")
    parser.add_argument("--ttl", type=float, default=0, help="SYNC_CLAIM_TTL_SECONDS (default: the app's, 150 s)")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--kill-after", type=float, default=0.3, help="share of households synced when one worker is killed (0: none)")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--database-url", required=True, help="PostgreSQL server to create a fresh database on")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args()

    from sqlalchemy import create_engine, func, select, text

    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp_name, bench_sync.simulator("subprocess") as (base, sim_pid):
        tmp = Path(tmp_name)
        with fresh_database(args.database_url, tmp) as database_url:
            sim_post(base, "clock", {"set": datetime.now(UTC).isoformat()})
            if args.latency_ms:
                sim_post(base, "faults", {"endpoint": "*", "latency_ms": args.latency_ms})
            app = bench_sync.make_app(database_url, tmp, base, lambda: datetime.now(UTC), log_level=args.log_level)
            # The workers decrypt the households' tokens with the same keys.
            secret, fernet = app.config["SECRET_KEY"], app.config["FERNET_ENCRYPTION_KEY"]
            started = time.perf_counter()
            create_users(app, args.households, site_ids(args.households))
            from app.extensions import db
            from app.models import SyncRun
            from app.sync import claims
            from app.sync.scheduler import tick_for
            from datetime import timedelta

            tick_at = tick_for(datetime.now(UTC), timedelta(seconds=PERIOD_SECONDS), timedelta(0))
            with app.app_context():
                claims.open_interval(tick_at)
                db.engine.dispose()
            print(f"{args.households} households (each its own Amber site and Powerwall) on PostgreSQL, created in "
                  f"{time.perf_counter() - started:.1f} s; {args.workers} worker processes x {args.threads} threads; "
                  f"{args.latency_ms} ms per outside call; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
            engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
            env = worker_env(database_url, tmp / "data", base, secret, fernet, args)
            logs = [tmp / f"worker-{n}.log" for n in range(args.workers)]
            interval_start = datetime.now(UTC)
            t0 = time.monotonic()
            procs = []
            for log_path in logs:
                with log_path.open("w") as out:
                    procs.append(subprocess.Popen([sys.executable, "-m", "app.sync.worker"], cwd=ROOT, env=env,
                                                  stdout=out, stderr=subprocess.STDOUT))

            def synced() -> int:
                with engine.connect() as conn:
                    return conn.execute(select(func.count(func.distinct(SyncRun.household_id))).where(SyncRun.tick_at == tick_at)).scalar()

            try:
                victim = None
                killed_at = None
                orphaned: set[int] = set()
                cpu: dict[int, float] = {}
                rss: dict[int, float] = {}
                done = 0
                while time.monotonic() - t0 < args.timeout:
                    done = synced()
                    if done >= args.households:
                        break
                    if victim is None and args.kill_after and done >= args.kill_after * args.households:
                        victim = procs[0]
                        cpu[victim.pid], rss[victim.pid] = child_cpu_seconds(victim.pid) or 0.0, child_peak_rss_mb(victim.pid) or 0.0
                        victim.send_signal(signal.SIGKILL)
                        victim.wait()
                        killed_at = datetime.now(UTC)
                        with engine.connect() as conn:
                            orphaned = set(conn.execute(text("SELECT household_id FROM sync_claims WHERE claimed_by LIKE :who"),
                                                        {"who": f"%:{victim.pid}:%"}).scalars())
                        print(f"  killed worker {victim.pid} at {(killed_at - interval_start).total_seconds():.1f} s "
                              f"({done} synced); it held {len(orphaned)} unfinished claim(s)")
                    time.sleep(0.5)
                wall = time.monotonic() - t0
                for proc in procs:
                    if proc.poll() is None:
                        cpu[proc.pid], rss[proc.pid] = child_cpu_seconds(proc.pid) or 0.0, child_peak_rss_mb(proc.pid) or 0.0
                        proc.send_signal(signal.SIGTERM)
                for proc in procs:
                    try:
                        proc.wait(timeout=120)
                    except subprocess.TimeoutExpired:
                        proc.kill()
            finally:
                for proc in procs:  # also when this script is interrupted: no worker outlives it
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
            with engine.connect() as conn:
                runs = conn.execute(
                    select(SyncRun.household_id, SyncRun.finished_at, SyncRun.outcome, SyncRun.amber_calls, SyncRun.reason)
                    .where(SyncRun.tick_at == tick_at)
                ).all()
                by_worker = Counter()
            per_household = Counter(r.household_id for r in runs)
            duplicates = [h for h, n in per_household.items() if n > 1]
            missing = args.households - len(per_household)
            to_synced = [(r.finished_at - interval_start).total_seconds() for r in runs]
            taken_over = [(r.finished_at - killed_at).total_seconds() for r in runs if r.household_id in orphaned] if killed_at else []
            for log_path in logs:
                by_worker[log_path.name] = sum(int(line.split("claimed ")[1].split(" ")[0])
                                               for line in log_path.read_text().splitlines() if "msg=\"Worker" in line and " claimed " in line)
            outcomes = Counter(r.outcome for r in runs)
            reasons = Counter(r.reason[:140] for r in runs if r.outcome in ("failed", "skipped"))
            amber = sum(r.amber_calls for r in runs)
            print(f"all {len(per_household)} of {args.households} households synced in {wall:.1f} s" if not missing
                  else f"{missing} household(s) NOT synced after {wall:.1f} s")
            print(f"  exactly once: {'yes' if not duplicates and not missing else 'NO'} ({len(runs)} runs, "
                  f"{len(duplicates)} household(s) twice, {missing} never); outcomes {dict(outcomes)}")
            for reason, count in reasons.most_common(3):
                print(f"    {count} x {reason}")
            print(f"  interval start -> synced: p50 {percentile(to_synced, 0.5):.1f} s, p95 {percentile(to_synced, 0.95):.1f} s, "
                  f"max {max(to_synced, default=float('nan')):.1f} s (target p95 <= 60 s)")
            if killed_at:
                print(f"  the killed worker's {len(orphaned)} unfinished household(s) were synced by the others "
                      f"{min(taken_over, default=float('nan')):.1f}-{max(taken_over, default=float('nan')):.1f} s after the kill "
                      f"(claims expire after SYNC_CLAIM_TTL_SECONDS)")
            print(f"  Amber calls {amber} for {args.households} sites ({amber / max(args.households, 1):.2f} per site)")
            print(f"  households claimed per worker log: {dict(by_worker)}")
            total_cpu = sum(cpu.values())
            print(f"  workers' CPU {total_cpu:.1f} s = {total_cpu / max(len(runs), 1) * 1000:.1f} ms per household; "
                  f"peak RSS per worker {', '.join(f'{v:.0f}' for v in rss.values())} MB; "
                  f"simulator CPU {child_cpu_seconds(sim_pid) or 0:.1f} s")
            engine.dispose()
            return 1 if duplicates or missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
