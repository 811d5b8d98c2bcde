"""A sync worker process: `python -m app.sync.worker` claims households in batches and syncs them until
SIGINT/SIGTERM (SYNC_MODE=claims on PostgreSQL; see app/sync/claims.py and docs/deployment.md).

Run as many as the load needs, on any host that reaches the database; the scheduler (the web app's
embedded one or `flask scheduler run`) still runs the leader's jobs and opens each interval."""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from app.sync import claims, lease

log = logging.getLogger("app.sync.worker")


def main(argv: list[str] | None = None) -> int:
    """Start the app from the environment and run one claiming loop in the foreground."""
    parser = argparse.ArgumentParser(prog="python -m app.sync.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--id", help="this worker's name in the claims (default: host:pid:random)")
    args = parser.parse_args(argv)
    from app import create_app

    app = create_app()
    if not claims.enabled(app):
        print("The sync worker needs SYNC_MODE=claims and a PostgreSQL DATABASE_URL; with SQLite the scheduler "
              "syncs every household itself.", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    worker = claims.Worker(app, args.id or lease.new_holder_id())
    worker.run(stop)
    log.info("Worker %s: stopped", worker.id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
