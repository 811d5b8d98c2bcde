"""Benchmark the scale-out on PostgreSQL: real worker processes share one tick, one is killed mid-tick.

Run from the repository root:

    .venv/bin/python scripts/bench_scaleout.py --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python scripts/bench_scaleout.py --households 2000 --workers 4 --threads 8 --kill-after 0.3 --database-url ...

Creates a fresh PostgreSQL database with N households (default 10,000), each on its own Amber site and
its own Powerwall of the simulator (a subprocess, 100 ms added to every call, rate limits off), opens one
interval for all of them (their sync claims, as the scheduler's leader does), then starts `--workers`
real worker processes (SYNC_MODE=claims) at once: that moment is the interval's start. The script waits
until every household has a run for the interval (or `--timeout`), stops the workers with SIGTERM and
prints, per interval:

- every household synced exactly once (runs per household for the interval: missing, duplicates);
- p50 / p95 / max from the interval's start to a household synced (its run recorded), the target being a
  p95 within 60 s; the killed worker's orphaned households and when they were taken over (after
  SYNC_CLAIM_TTL_SECONDS, default 150 s, inside the 5-minute tick);
- Amber calls per site (each fetched once), households per worker, the workers' CPU per household and
  peak RSS.

`--intervals` (default 3) runs the same interval again with new workers, as `bench_sync.py` runs its ticks:
the first is every household's first sync (each one pushes: the heaviest kind of interval, which a
deployment sees once), the second reads every Powerwall back once (due every SYNC_READBACK_HOURS), the
third on are the steady state, what most intervals look like (Amber repeats itself within an interval, as
the simulator does, so nothing is pushed). Before each, the claims are due again and both clocks are set
back to a second after the previous interval's instant. The simulator's clock stands still during an
interval (Amber's answers stay those of its start, however long the interval takes: an interval that ran
past a 5-minute boundary used to hand the late households the next interval's prices, and the same
interval run again then pushed them back and forth), and the default instant is early in a 15-minute step
(the tariff's own step, by the workers' running clocks), so that a long first interval stays inside it.
The worker processes are `app.sync.worker`'s `run_worker` on the app of `create_app()`, started through
this script (`--run-worker`) only to give them the simulator's clock (a chosen instant that runs on in real
time from their start); `--kill-after` of the households synced in the LAST interval, one of them is
SIGKILLed in the middle of its batch.

`--start` says when the workers start: `cold` (the default until this option; each interval's workers start with it,
so their imports and app creation count in the interval, as on the first interval after a deployment) or
`warm` (the workers start first, with nothing due, and the interval opens once all are waiting: its claims
come due, as when the scheduler's leader opens an interval for workers that have been running for days; the
start then is that moment, and the workers' CPU counts from it). Both print the same figures.

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
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import bench_sync  # noqa: E402
from bench_sync import RunningClock, child_cpu_seconds, child_peak_rss_mb, create_users, fresh_database, percentile, sim_post, site_ids  # noqa: E402

UTC = timezone.utc
PERIOD_SECONDS = 3600
# Early in a 15-minute step (the tariff builder's), in the evening peak of the simulator's prices.
DEFAULT_SCALEOUT_AT = "2026-11-24T08:00:40+00:00"
KINDS = ("first", "readback", "steady")


def run_worker_on_simulated_clock() -> int:
    """Child process (`--run-worker`): the app from the environment with the clock BENCH_CLOCK gives
    ("instant|epoch": that instant at that wall-clock moment, running on in real time), one claiming loop."""
    from app import create_app
    from app.sync.worker import run_worker

    instant, epoch = os.environ["BENCH_CLOCK"].split("|")
    app = create_app()
    # The shared instant, moved on by the wall-clock time since `epoch`; from here on it runs in real time.
    app.extensions["clock"] = RunningClock(datetime.fromisoformat(instant) + timedelta(seconds=time.time() - float(epoch)))
    return run_worker(app)


def worker_env(database_url: str, data_dir: Path, base: str, secret: str, fernet: str, args) -> dict[str, str]:
    from app.simulator import identity

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDULER", "SYNC_", "GUNICORN_"))}
    env.update(identity.app_settings(base))
    env.update(
        APP_ENV="production", DATA_DIR=str(data_dir), DATABASE_URL=database_url, SECRET_KEY=secret,
        FERNET_ENCRYPTION_KEY=fernet,
        LOG_LEVEL="INFO",  # the workers' 'claimed N household(s)' lines are counted
        PYTHONUNBUFFERED="1", SCHEDULER="off",
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
    parser.add_argument("--intervals", type=int, default=3,
                        help="1 = every household's first sync, 2 = then each Powerwall read back, 3+ = then the steady state")
    parser.add_argument("--kill-after", type=float, default=0.3,
                        help="share of households synced in the last interval when one worker is killed (0: none)")
    parser.add_argument("--start", choices=("cold", "warm"), default="cold",
                        help="cold: the workers start with each interval; warm: they are running (idle) when it opens")
    parser.add_argument("--at", default=DEFAULT_SCALEOUT_AT, help="simulated instant of the interval (ISO 8601 with offset)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for an interval")
    parser.add_argument("--database-url", help="PostgreSQL server to create a fresh database on (required)")
    parser.add_argument("--log-level", default="WARNING")
    parser.add_argument("--run-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_worker:
        return run_worker_on_simulated_clock()
    if not args.database_url:
        parser.error("--database-url is required")

    from sqlalchemy import create_engine, text

    at = datetime.fromisoformat(args.at).astimezone(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp_name, bench_sync.simulator("subprocess") as (base, sim_pid):
        tmp = Path(tmp_name)
        with fresh_database(args.database_url, tmp) as database_url:
            if args.latency_ms:
                sim_post(base, "faults", {"endpoint": "*", "latency_ms": args.latency_ms})
            app = bench_sync.make_app(database_url, tmp, base, lambda: at, log_level=args.log_level)
            # The workers decrypt the households' tokens with the same keys.
            secret, fernet = app.config["SECRET_KEY"], app.config["FERNET_ENCRYPTION_KEY"]
            started = time.perf_counter()
            create_users(app, args.households, site_ids(args.households))
            from app.extensions import db
            from app.sync import claims
            from app.sync.scheduler import tick_for

            tick_at = tick_for(at, timedelta(seconds=PERIOD_SECONDS), timedelta(0))
            with app.app_context():
                claims.open_interval(tick_at)
                db.engine.dispose()
            print(f"{args.households} households (each its own Amber site and Powerwall) on PostgreSQL, created in "
                  f"{time.perf_counter() - started:.1f} s; {args.workers} worker processes x {args.threads} threads; "
                  f"{args.latency_ms} ms per outside call; workers start {args.start}; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
            speed_before = bench_sync.host_speed_ms()
            engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
            env = worker_env(database_url, tmp / "data", base, secret, fernet, args)
            failed = False
            summary = []
            for number in range(1, args.intervals + 1):
                kind = KINDS[min(number, len(KINDS)) - 1]
                if number > 1:  # the same interval again: due again, both clocks a second after the last one's instant
                    with engine.begin() as conn:
                        conn.execute(text("UPDATE sync_claims SET due_at = :tick, claimed_by = NULL, claimed_until = NULL"),
                                     {"tick": tick_at.replace(tzinfo=None)})
                instant = at + timedelta(seconds=number - 1)
                sim_post(base, "clock", {"set": instant.isoformat(), "freeze": True})
                kill_after = args.kill_after if number == args.intervals else 0
                result = run_interval(engine, env, args, tmp, number, kind, instant, tick_at, kill_after, sim_pid)
                failed = failed or result["failed"]
                summary.append(result["line"])
            print(f"summary ({args.households} households, {args.workers} workers x {args.threads} threads started {args.start}, PostgreSQL, "
                  f"{args.latency_ms} ms per call):")
            for line in summary:
                print(f"  {line}")
            print(f"host speed: reference workload {speed_before:.1f} ms before the intervals, {bench_sync.host_speed_ms():.1f} ms "
                  "after (thread CPU, lower is faster: compare figures only between runs with similar values)")
            engine.dispose()
            return 1 if failed else 0


def machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat (None elsewhere)."""
    try:
        fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


def postgres_cpu_seconds() -> float | None:
    """CPU seconds used so far by the PostgreSQL server on this machine: every live `postgres` process, and
    through the postmaster's children's time the backends that have exited (the workers' pools open and
    close connections). None when no such process is readable (a remote server, or not Linux)."""
    total, found = 0.0, False
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        seconds = child_cpu_seconds(int(comm.parent.name))
        if seconds is not None:
            total, found = total + seconds, True
    return total if found else None


def run_interval(engine, env: dict[str, str], args, tmp: Path, number: int, kind: str, instant: datetime,
                 tick_at: datetime, kill_after: float, sim_pid: int | None) -> dict:
    """Start the workers on the simulator's clock at `instant`, kill one when `kill_after` are synced, wait
    until every household has a run of this interval, stop them; print and return the interval's figures."""
    from sqlalchemy import func, select, text

    from app.models import SyncRun

    with engine.connect() as conn:
        before = conn.execute(select(func.coalesce(func.max(SyncRun.id), 0))).scalar()
    this_interval = (SyncRun.tick_at == tick_at, SyncRun.id > before)
    logs = [tmp / f"interval-{number}-worker-{n}.log" for n in range(args.workers)]
    warm = args.start == "warm"
    if warm:  # nothing due until every worker waits: due at the next interval, brought back below
        with engine.begin() as conn:
            conn.execute(text("UPDATE sync_claims SET due_at = :later"),
                         {"later": (tick_at + timedelta(seconds=PERIOD_SECONDS)).replace(tzinfo=None)})
    print(f"interval {number} ({kind}): starting {args.workers} workers{' before it opens' if warm else ''}, "
          f"load {os.getloadavg()[0]:.1f}")
    epoch = time.time()  # the workers' clocks read `instant` at this moment and run on from it
    interval_env = {**env, "BENCH_CLOCK": f"{instant.isoformat()}|{epoch}"}
    procs = []
    for log_path in logs:
        with log_path.open("w") as out:
            procs.append(subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--run-worker"], cwd=ROOT,
                                          env=interval_env, stdout=out, stderr=subprocess.STDOUT))
    cpu_at_start: dict[int, float] = {}
    if warm:
        deadline = time.monotonic() + 120
        while not all("claiming households" in p.read_text() for p in logs):
            if time.monotonic() > deadline or any(proc.poll() is not None for proc in procs):
                for proc in procs:
                    proc.kill()
                raise SystemExit("the workers did not all start; their logs: " + "; ".join(p.read_text()[-500:] for p in logs))
            time.sleep(0.2)
        time.sleep(2.0)  # past their first (empty) claims, waiting to poll again
        cpu_at_start = {proc.pid: child_cpu_seconds(proc.pid) or 0.0 for proc in procs}
    sim_cpu_before = child_cpu_seconds(sim_pid) or 0.0
    machine_before = machine_cpu()
    pg_before = postgres_cpu_seconds()
    t0 = time.monotonic()
    # The interval's start on the workers' clocks (which stamp each run's finished_at).
    interval_start = instant + timedelta(seconds=time.time() - epoch)
    if warm:
        with engine.begin() as conn:  # the interval opens: every claim is due
            conn.execute(text("UPDATE sync_claims SET due_at = :tick"), {"tick": tick_at.replace(tzinfo=None)})

    def take_figures(proc: subprocess.Popen) -> None:
        """A worker's CPU since the interval's start (since its own start when cold) and its peak RSS."""
        cpu[proc.pid] = (child_cpu_seconds(proc.pid) or 0.0) - cpu_at_start.get(proc.pid, 0.0)
        rss[proc.pid] = child_peak_rss_mb(proc.pid) or 0.0

    def synced() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count(func.distinct(SyncRun.household_id))).where(*this_interval)).scalar()

    try:
        victim = None
        killed_after = None
        orphaned: set[int] = set()
        cpu: dict[int, float] = {}
        rss: dict[int, float] = {}
        bulk = None  # the machine's CPU and the time when all but the killed worker's claims are synced
        while time.monotonic() - t0 < args.timeout:
            done = synced()
            if bulk is None and done >= args.households - len(orphaned):
                bulk = machine_cpu(), time.monotonic() - t0, postgres_cpu_seconds()
            if done >= args.households:
                break
            if victim is None and kill_after and done >= kill_after * args.households:
                victim = procs[0]
                take_figures(victim)
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                killed_after = time.monotonic() - t0
                with engine.connect() as conn:
                    orphaned = set(conn.execute(text("SELECT household_id FROM sync_claims WHERE claimed_by LIKE :who"),
                                                {"who": f"%:{victim.pid}:%"}).scalars())
                print(f"  killed worker {victim.pid} at {killed_after:.1f} s ({done} synced); it held {len(orphaned)} "
                      "unfinished claim(s)")
            time.sleep(0.5)
        wall = time.monotonic() - t0
        for proc in procs:
            if proc.poll() is None:
                take_figures(proc)
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
            select(SyncRun.household_id, SyncRun.finished_at, SyncRun.outcome, SyncRun.amber_calls, SyncRun.tesla_calls,
                   SyncRun.reason).where(*this_interval)
        ).all()
    per_household = Counter(r.household_id for r in runs)
    duplicates = [h for h, n in per_household.items() if n > 1]
    missing = args.households - len(per_household)
    to_synced = [(r.finished_at - interval_start).total_seconds() for r in runs]
    killed_at = interval_start + timedelta(seconds=killed_after) if killed_after is not None else None
    taken_over = [(r.finished_at - killed_at).total_seconds() for r in runs if r.household_id in orphaned] if killed_at else []
    by_worker = Counter()
    for log_path in logs:
        by_worker[log_path.name.split("-", 2)[2]] = sum(int(line.split("claimed ")[1].split(" ")[0])
                                                        for line in log_path.read_text().splitlines() if "msg=\"Worker" in line and " claimed " in line)
    outcomes = Counter(r.outcome for r in runs)
    reasons = Counter(r.reason[:140] for r in runs if r.outcome in ("failed", "skipped"))
    amber, tesla = sum(r.amber_calls for r in runs), sum(r.tesla_calls for r in runs)
    p50, p95 = percentile(to_synced, 0.5), percentile(to_synced, 0.95)
    print(f"  all {len(per_household)} of {args.households} households synced in {wall:.1f} s" if not missing
          else f"  {missing} household(s) NOT synced after {wall:.1f} s")
    print(f"  exactly once: {'yes' if not duplicates and not missing else 'NO'} ({len(runs)} runs, "
          f"{len(duplicates)} household(s) twice, {missing} never); outcomes {dict(outcomes)}")
    for reason, count in reasons.most_common(3):
        print(f"    {count} x {reason}")
    print(f"  interval start -> synced: p50 {p50:.1f} s, p95 {p95:.1f} s, "
          f"max {max(to_synced, default=float('nan')):.1f} s (target p95 <= 60 s)")
    step_end = instant.replace(minute=instant.minute // 15 * 15, second=0, microsecond=0) + timedelta(minutes=15)
    late = sum(1 for r in runs if r.finished_at >= step_end)
    if late:
        print(f"  WARNING: {late} household(s) synced after {step_end:%H:%M} UTC, in the next 15-minute step: their tariffs "
              "differ from the others', so running the same interval again pushes them again (use an earlier --at)")
    if kill_after and not killed_at:
        print(f"  no worker was killed: the interval ended before the benchmark saw {kill_after:.0%} of the households synced "
              "(it looks twice a second; more households or --latency-ms make the interval longer)")
    if killed_at and not orphaned:
        print("  the killed worker held no claim (the kill fell between two of its batches)")
    elif killed_at:
        print(f"  the killed worker's {len(orphaned)} unfinished household(s) were synced by the others "
              f"{min(taken_over, default=float('nan')):.1f}-{max(taken_over, default=float('nan')):.1f} s after the kill "
              f"(claims expire after SYNC_CLAIM_TTL_SECONDS)")
    print(f"  Amber calls {amber} for {args.households} sites ({amber / max(args.households, 1):.2f} per site), Tesla calls {tesla}")
    print(f"  households claimed per worker log: {dict(by_worker)}")
    total_cpu = sum(cpu.values())
    per = total_cpu / max(len(runs), 1) * 1000
    sim_cpu = (child_cpu_seconds(sim_pid) or 0.0) - sim_cpu_before
    print(f"  workers' CPU {total_cpu:.1f} s = {per:.1f} ms per household; "
          f"peak RSS per worker {', '.join(f'{v:.0f}' for v in rss.values())} MB; simulator CPU {sim_cpu:.1f} s")
    if machine_before and bulk and bulk[0]:
        busy, total = bulk[0][0] - machine_before[0], bulk[0][1] - machine_before[1]
        print(f"  the machine's {os.cpu_count()} CPUs were {busy / total * 100:.0f} % busy in the {bulk[1]:.0f} s until all "
              f"but the killed worker's claims were synced: {busy:.0f} CPU-s (workers {total_cpu:.0f} and simulator {sim_cpu:.0f} "
              "in the whole interval)")
        if pg_before is not None and bulk[2] is not None:
            pg = bulk[2] - pg_before
            print(f"  PostgreSQL's CPU in that time: {pg:.1f} s = {pg / max(len(runs), 1) * 1000:.1f} ms per household "
                  "(every process of the server on this machine)")
    line = (f"{kind:8} interval: {len(runs)} runs, exactly once {'yes' if not duplicates and not missing else 'NO'}, "
            f"p95 interval start -> synced {p95:.1f} s (p50 {p50:.1f}, max {max(to_synced, default=float('nan')):.1f}), "
            f"workers' CPU {per:.1f} ms per household" + (f", {len(orphaned)} claims of the killed worker taken over "
                                                           f"{min(taken_over, default=float('nan')):.1f} s after the kill" if orphaned else
                                                           ", the killed worker held no claim" if killed_at else ""))
    return {"failed": bool(duplicates or missing), "line": line}


if __name__ == "__main__":
    raise SystemExit(main())
