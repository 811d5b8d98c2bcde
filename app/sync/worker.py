"""A sync worker process: `flask sync worker` (or `python -m app.sync.worker`) claims households in batches
and syncs them until SIGINT/SIGTERM (SYNC_MODE=claims on PostgreSQL; see app/sync/claims.py and
docs/deployment.md).

Run as many as the load needs, on any host that reaches the database; the scheduler (the web app's
embedded one or `flask scheduler run`) still runs the leader's jobs and opens each interval."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from flask import Flask

from app.sync import claims, lease

log = logging.getLogger("app.sync.worker")

REFUSAL = ("The sync worker needs SYNC_MODE=claims and a PostgreSQL DATABASE_URL; with SQLite, or without "
           "SYNC_MODE=claims, the scheduler's leader syncs every household itself.")


def run_worker(app: Flask, worker_id: str | None = None, stop: threading.Event | None = None) -> int:
    """Run one claiming loop in the foreground until SIGINT/SIGTERM or `stop`; 2 if claims are not enabled."""
    if not claims.enabled(app):
        print(REFUSAL, file=sys.stderr)
        return 2
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    worker = claims.Worker(app, worker_id or lease.new_holder_id())
    try:
        worker.run(stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log.info("Worker %s: stopped", worker.id)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m app.sync.worker`: the app from the environment, one claiming loop."""
    parser = argparse.ArgumentParser(prog="python -m app.sync.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--id", help="this worker's name in the claims (default: host:pid:random)")
    args = parser.parse_args(argv)
    from app import create_app

    return run_worker(create_app(), args.id)


if __name__ == "__main__":
    raise SystemExit(main())
