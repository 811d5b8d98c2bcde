"""Gunicorn settings for `gunicorn -c gunicorn.conf.py run:app` (`make run`, and the Docker image).

Environment (also read from `.env`): HOST (default 127.0.0.1; use 0.0.0.0 in a container), PORT
(5001), GUNICORN_WORKERS (2), GUNICORN_THREADS (4), GUNICORN_KEEPALIVE (0 seconds). Each worker starts the embedded scheduler after it
has loaded the app (unless SCHEDULER=off); the database lease lets exactly one of them run the ticks.
"""
import os

# Module-level names are read as gunicorn settings, so helpers start with an underscore.
import config as _app_config  # noqa: F401  (loads .env, so these variables can live there too)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, "").strip() or default


bind = f"{_env('HOST', '127.0.0.1')}:{_env('PORT', '5001')}"
workers = int(_env("GUNICORN_WORKERS", "2"))
threads = int(_env("GUNICORN_THREADS", "4"))
# Seconds an idle connection is kept open for the client's next request. 0 (the default) closes it after
# each response: a kept-open connection stays with the worker that accepted it, and with the app's work
# being CPU in one Python process per worker, a worker that happened to collect more clients queued
# their requests while others idled (scripts/load.py, 50 clients at ~2 views/s each: p95 184 ms with
# keep-alive 2 s, 47 ms without). A new connection costs well under a millisecond on a LAN or behind a
# reverse proxy.
keepalive = int(_env("GUNICORN_KEEPALIVE", "0"))
# The app writes one redacted access line per request with its request id (app/observability.py).
accesslog = None
# The app is loaded in each worker, after the fork: no database connection or scheduler thread is
# shared between processes.
preload_app = False


def post_worker_init(worker) -> None:
    """Start this worker's embedded scheduler (threads do not survive a fork, so never in the master)."""
    import gc

    from app.sync.scheduler import start_embedded

    # The loaded app is long-lived: keep the collector from re-walking it on every full collection
    # (measured: it doubled the dashboard's p95 on SQLite).
    gc.freeze()
    start_embedded(worker.wsgi)


def worker_exit(server, worker) -> None:
    """Stop the worker's scheduler and release its lease, so another worker takes over at once."""
    from app.sync.scheduler import stop_embedded

    stop_embedded()
