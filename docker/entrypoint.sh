#!/bin/sh
# The container's entrypoint (also runs outside Docker: tests/test_entrypoint_gunicorn.py).
#
# 1. Checks that DATA_DIR is writable (SQLite database and generated keys live there).
# 2. Waits for the database, at most DB_WAIT_SECONDS (default 60), with the app's own config.
# 3. Applies the migrations (`flask db upgrade`) unless RUN_MIGRATIONS=0.
# 4. Replaces itself with the command: gunicorn by default (the image's CMD), or whatever was given,
#    e.g. `flask scheduler run` for a dedicated scheduler service or `flask users create ...`.
#
# It prints what it does and why it stops, never a secret: database URLs are shown without password.
set -eu

cd "$(dirname "$0")/.."

FLASK_APP="${FLASK_APP:-run.py}"
export FLASK_APP

say() {
    echo "entrypoint: $*"
}

fail() {
    echo "entrypoint: ERROR: $*" >&2
    exit 1
}

# As PID 1 without `init: true`, sh would ignore `docker stop` while it waits; exit instead.
trap 'say "stopped by a signal"; exit 143' TERM INT

if [ "$#" -eq 0 ]; then
    set -- gunicorn -c gunicorn.conf.py run:app
fi

case "${DB_WAIT_SECONDS:-60}" in
    '' | *[!0-9]*) fail "DB_WAIT_SECONDS must be a whole number of seconds (got '${DB_WAIT_SECONDS}')" ;;
esac
wait_seconds="${DB_WAIT_SECONDS:-60}"

# --- 1. DATA_DIR --------------------------------------------------------------------------------
data_dir="${DATA_DIR:-./data}"
if ! mkdir -p "$data_dir" 2>/dev/null || [ ! -w "$data_dir" ]; then
    fail "DATA_DIR $data_dir is not writable by uid $(id -u) (gid $(id -g)). It holds the SQLite database and the \
generated keys. For a bind mount, on the host: sudo chown -R $(id -u):$(id -g) ./data"
fi

# --- 2. The database ----------------------------------------------------------------------------
# Exit status: 0 reachable, 1 not yet (retry), 2 will never work (bad configuration: stop now).
# The first output line describes the database; a second one, on failure, says why.
probe='
import sys

try:
    from config import ConfigError, config_for
except Exception as exc:
    print("the app cannot be imported: %s" % type(exc).__name__)
    sys.exit(2)
try:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    uri = config_for().SQLALCHEMY_DATABASE_URI
    url = make_url(uri)
except ConfigError as exc:
    print("configuration error: %s" % exc)  # ConfigError messages name the variable, never a value
    sys.exit(2)
except (ArgumentError, ValueError):
    print("DATABASE_URL is not a valid database URL (expected e.g. postgresql://user:password@host:5432/db)")
    sys.exit(2)

print(url.render_as_string(hide_password=True))
try:
    engine = create_engine(url, connect_args={"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {})
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
except (NoSuchModuleError, ImportError) as exc:
    print("no driver for this database URL (%s)" % type(exc).__name__)
    sys.exit(2)
except Exception as exc:
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = reason[0] if reason else type(exc).__name__
    if url.password:
        reason = reason.replace(url.password, "***")
    print("%s: %s" % (type(exc).__name__, reason))
    sys.exit(1)
'

attempt=1
start=$(date +%s)
while :; do
    status=0
    output=$(python -c "$probe") || status=$?
    target=$(printf '%s\n' "$output" | head -n 1)
    reason=$(printf '%s\n' "$output" | sed -n '2p')
    if [ "$status" -eq 0 ]; then
        say "database $target is reachable"
        break
    fi
    if [ "$status" -ne 1 ]; then
        fail "${reason:-$target}"
    fi
    elapsed=$(( $(date +%s) - start ))
    if [ "$elapsed" -ge "$wait_seconds" ]; then
        fail "database $target still unreachable after ${elapsed} s (DB_WAIT_SECONDS=${wait_seconds}): $reason"
    fi
    say "waiting for database $target (attempt $attempt, ${elapsed} s of ${wait_seconds} s): $reason"
    attempt=$((attempt + 1))
    sleep 2
done

# --- 3. Migrations ------------------------------------------------------------------------------
case "${RUN_MIGRATIONS:-1}" in
    0 | false | no | off)
        say "RUN_MIGRATIONS=${RUN_MIGRATIONS}: not applying migrations (another service does)"
        ;;
    *)
        say "applying database migrations (flask db upgrade)"
        flask db upgrade || fail "flask db upgrade failed (see above); nothing was started"
        say "database schema is up to date"
        ;;
esac

# --- 4. The command -----------------------------------------------------------------------------
# Only the words before the first option are shown: options may carry secrets (--password ...).
shown=""
for word in "$@"; do
    case "$word" in -*) break ;; esac
    shown="${shown:+$shown }$word"
done
if [ "$1" = gunicorn ]; then
    shown="$shown (${GUNICORN_WORKERS:-2} workers x ${GUNICORN_THREADS:-4} threads on ${HOST:-127.0.0.1}:${PORT:-5001})"
fi
say "starting $shown"
exec "$@"
