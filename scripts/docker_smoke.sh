#!/usr/bin/env bash
# Docker for real: build the image, run it on a bind-mounted data folder, sign up the first account over
# HTTP, restart the container and sign in again (keys and data kept), check it runs as a non-root user and
# that the database and keys are 0600, then stop it. Prints the image size, what it adds over its base, and
# the time from `docker run` to healthy. Not part of CI (it takes minutes); needs a Docker engine.
#   scripts/docker_smoke.sh                 # IMAGE=tesla-amber-sync:smoke by default
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-tesla-amber-sync:smoke}"
BASE="${BASE_IMAGE:-python:3.11-slim-bookworm}"
NAME="tas-smoke-$$"
EMAIL="owner@example.com"
PASSWORD="smoke test password 42"
WORK="$(mktemp -d /tmp/tas-smoke.XXXXXX)"
DATA="$WORK/data"
JAR="$WORK/cookies"

say() { echo "smoke: $*"; }
fail() { echo "smoke: FAILED: $*" >&2; docker logs "$NAME" 2>&1 | tail -40 >&2 || true; exit 1; }
cleanup() {
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

command -v docker >/dev/null || fail "docker is not installed"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (start dockerd)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE_URL="http://127.0.0.1:$PORT"

say "building $IMAGE"
started=$(date +%s)
docker build --network host -q -t "$IMAGE" . >/dev/null || fail "docker build failed"
say "built in $(( $(date +%s) - started )) s"

mkdir -p "$DATA"
chown 1000:1000 "$DATA" 2>/dev/null || chmod 0777 "$DATA"   # the app runs as uid 1000

wait_healthy() {
    local since=$1 deadline=$(( $(date +%s) + 120 ))
    until curl -fsS "$BASE_URL/healthz" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy within 120 s"
        [ "$(docker inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = "true" ] || fail "the container stopped"
        sleep 0.5
    done
    python3 -c "import time; print(f'{time.time() - $since:.1f}')"
}

csrf() {  # the CSRF token of the form at $1, keeping cookies in $JAR
    curl -fsS -c "$JAR" -b "$JAR" "$BASE_URL$1" | python3 -c 'import re, sys; print(re.search(r"name=\"csrf_token\" type=\"hidden\" value=\"([^\"]+)\"|name=\"csrf_token\" value=\"([^\"]+)\"", sys.stdin.read()).group(1) or "")'
}

say "running on $BASE_URL with $DATA mounted at /data"
t0=$(python3 -c 'import time; print(time.time())')
docker run -d --name "$NAME" -p "127.0.0.1:$PORT:5001" -v "$DATA:/data" "$IMAGE" >/dev/null || fail "docker run failed"
healthy=$(wait_healthy "$t0")
say "healthy after $healthy s"

token=$(csrf /register)
status=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -c "$JAR" -b "$JAR" \
    --data-urlencode "csrf_token=$token" --data-urlencode "email=$EMAIL" \
    --data-urlencode "password=$PASSWORD" --data-urlencode "confirm=$PASSWORD" "$BASE_URL/register")
case "$status" in 302*/settings) say "signed up $EMAIL (the first account)";; *) fail "sign-up answered $status";; esac
[ "$(curl -sS -o /dev/null -w '%{http_code}' -b "$JAR" "$BASE_URL/")" = 200 ] || fail "the dashboard did not open after sign-up"

uid=$(docker exec "$NAME" id -u)
[ "$uid" != 0 ] || fail "the app runs as root"
say "runs as uid $uid"

say "restarting the container"
t1=$(python3 -c 'import time; print(time.time())')
docker restart "$NAME" >/dev/null
healthy_again=$(wait_healthy "$t1")
say "healthy again after $healthy_again s"

rm -f "$JAR"
token=$(csrf /login)
status=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' -c "$JAR" -b "$JAR" \
    --data-urlencode "csrf_token=$token" --data-urlencode "email=$EMAIL" --data-urlencode "password=$PASSWORD" "$BASE_URL/login")
case "$status" in 302*) say "signed in again after the restart (account, keys and session secret kept)";; *) fail "sign-in after restart answered $status";; esac
page=$(curl -fsS -b "$JAR" "$BASE_URL/household") || fail "the household page did not open"
echo "$page" | grep -q "$EMAIL" || fail "the household page does not show the account"

for file in tesla_amber_sync.db secret_key fernet.key; do
    [ -f "$DATA/$file" ] || fail "$file is missing from the data folder"
    mode=$(stat -c %a "$DATA/$file")
    [ "$mode" = 600 ] || fail "$file is mode $mode, not 600"
done
say "database and keys are 0600: $(cd "$DATA" && stat -c '%n %a' tesla_amber_sync.db secret_key fernet.key | tr '\n' ' ')"

docker stop "$NAME" >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base=$(docker image inspect -f '{{.Size}}' "$BASE" 2>/dev/null || echo 0)
python3 - "$size" "$base" "$healthy" "$healthy_again" <<'PY'
import sys
size, base, first, again = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"smoke: image {size / 1e6:.0f} MB; base {base / 1e6:.0f} MB; added over the base {(size - base) / 1e6:.0f} MB")
print(f"smoke: time to healthy {first} s on first start (keys generated, database created), {again} s after a restart")
PY
say "OK"
