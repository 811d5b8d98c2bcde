#!/usr/bin/env bash
# Docker for real: build the image, run it on a bind-mounted data folder, sign up the first account over
# HTTP, restart the container and sign in again (keys and data kept), start it one migration behind (the
# entrypoint backs up, then upgrades), check it runs as a non-root user and that the database and keys are
# 0600 (nothing in the data folder open to others), then stop it. Prints the image size, what it adds over its base, and
# the time from `docker run` to healthy. Not part of CI (it takes a minute or two); needs a Docker engine,
# curl and python3 on this machine. Nothing is left behind: the container and the data folder are removed
# on every exit, Ctrl-C included; the image stays (IMAGE, to reuse or remove it).
#
#   scripts/docker_smoke.sh                        # IMAGE=tesla-amber-sync:smoke by default
#   PYTHON_VERSION=3.12 scripts/docker_smoke.sh    # passed to the build as --build-arg (the base image)
#   BASE_IMAGE=... scripts/docker_smoke.sh         # the image to compare sizes with (default: the
#                                                  # Dockerfile's last FROM with its ARG defaults)
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${IMAGE:-tesla-amber-sync:smoke}"
NAME="tas-smoke-$$-$RANDOM"
EMAIL="owner@example.com"
PASSWORD="smoke test password 42"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tas-smoke.XXXXXX")"
DATA="$WORK/data"
JAR="$WORK/cookies"
BASE_URL=""
WAITED=""

say() { echo "smoke: $*"; }
fail() {
    echo "smoke: FAILED: $*" >&2
    if docker inspect "$NAME" >/dev/null 2>&1; then
        echo "smoke: the container's last log lines:" >&2
        docker logs --tail 40 "$NAME" 2>&1 | sed 's/^/    /' >&2 || true
    fi
    exit 1
}
cleanup() {
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    # The app's files belong to its uid (1000). When this user may not delete them, the image can.
    if ! rm -rf "$WORK" 2>/dev/null; then
        docker run --rm --user 0 --entrypoint rm -v "$WORK:/work" "$IMAGE" -rf /work/data >/dev/null 2>&1 || true
        rm -rf "$WORK" 2>/dev/null || echo "smoke: could not remove $WORK" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { python3 -c 'import time; print(time.time())'; }
seconds_since() { python3 -c "import time; print(f'{time.time() - $1:.1f}')"; }

# The runtime stage's FROM with the Dockerfile's global ARG defaults (PYTHON_VERSION from the environment).
dockerfile_base() {
    python3 - <<'PY'
import os
import re

args, base = {}, None
for line in open("Dockerfile"):
    arg = re.match(r"\s*ARG\s+(\w+)=(\S+)", line, re.I)
    if arg and base is None:
        args[arg[1]] = os.environ.get(arg[1]) or arg[2]
    stage = re.match(r"\s*FROM\s+(\S+)", line, re.I)
    if stage:
        base = stage[1]
print(re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), base))
PY
}

# The csrf_token of the first form on page $1; cookies in $JAR.
csrf() {
    curl -fsS -m 10 -c "$JAR" -b "$JAR" "$BASE_URL$1" | python3 -c '
import re, sys
for tag in re.findall(r"<input\b[^>]*>", sys.stdin.read()):
    if re.search(r"\bname=\"csrf_token\"", tag):
        print(re.search(r"\bvalue=\"([^\"]*)\"", tag)[1])
        break
else:
    sys.exit(1)'
}

# POST the form fields ("name=value" ...) to $1 with its CSRF token; prints "STATUS LOCATION".
post_form() {
    local path=$1 token
    shift
    token=$(csrf "$path") || fail "no form with a CSRF token at $path"
    local fields=(--data-urlencode "csrf_token=$token")
    for field in "$@"; do fields+=(--data-urlencode "$field"); done
    curl -sS -m 10 -o /dev/null -w '%{http_code} %{redirect_url}' -c "$JAR" -b "$JAR" "${fields[@]}" "$BASE_URL$path"
}

# Whether page $1 opens (200, no redirect to the sign-in page) with the cookies in jar $2 and shows $EMAIL.
signed_in() {
    local page
    page=$(curl -fsS -m 10 -b "$2" "$BASE_URL$1") || return 1
    grep -qF "$EMAIL" <<<"$page"
}

# Waits until /healthz answers 200 on the port Docker published; sets BASE_URL and WAITED (s since $1).
wait_for_healthz() {
    local since=$1 deadline=$(( $(date +%s) + 120 )) address
    while :; do
        [ "$(docker inspect -f '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ] || fail "the container stopped"
        address=$(docker port "$NAME" 5001/tcp 2>/dev/null | head -n 1)
        BASE_URL="http://$address"
        if [ -n "$address" ] && curl -fsS -m 5 "$BASE_URL/healthz" >/dev/null 2>&1; then
            break
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "/healthz did not answer 200 within 120 s"
        sleep 0.5
    done
    WAITED=$(seconds_since "$since")
}

# Waits until Docker's own healthcheck (the image's HEALTHCHECK) calls the container healthy.
wait_for_docker_healthy() {
    local since=$1 deadline=$(( $(date +%s) + 150 )) status
    while :; do
        status=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$NAME")
        case "$status" in
            healthy) break ;;
            none) fail "the image has no HEALTHCHECK" ;;
            unhealthy) fail "Docker's healthcheck says unhealthy: $(docker inspect -f '{{range .State.Health.Log}}{{.Output}}{{end}}' "$NAME" | tail -n 3)" ;;
        esac
        [ "$(date +%s)" -lt "$deadline" ] || fail "Docker's healthcheck still says '$status' after 150 s"
        sleep 1
    done
    WAITED=$(seconds_since "$since")
}

command -v docker >/dev/null || fail "docker is not installed"
command -v curl >/dev/null || fail "curl is not installed"
command -v python3 >/dev/null || fail "python3 is not installed"
docker info >/dev/null 2>&1 || fail "no Docker engine answers (start dockerd, or check that you may use it)"

# --- build -------------------------------------------------------------------------------------------
build_args=()
[ -z "${PYTHON_VERSION:-}" ] || build_args+=(--build-arg "PYTHON_VERSION=$PYTHON_VERSION")
say "building $IMAGE (docker build --network host)"
started=$(now)
if ! docker build --network host ${build_args[@]+"${build_args[@]}"} -t "$IMAGE" . >"$WORK/build.log" 2>&1; then
    tail -n 30 "$WORK/build.log" | sed 's/^/    /' >&2
    fail "docker build failed"
fi
say "built in $(seconds_since "$started") s"

# --- first start: keys generated, database created ---------------------------------------------------
mkdir -p "$DATA"
# The app runs as uid 1000; without root here, the folder is opened to everyone (it is a temporary one).
chown 1000:1000 "$DATA" 2>/dev/null || chmod 0777 "$DATA"
started=$(now)
docker run -d --name "$NAME" -p "127.0.0.1::5001" -v "$DATA:/data" "$IMAGE" >/dev/null || fail "docker run failed"
wait_for_healthz "$started"
first_healthz=$WAITED
say "running on $BASE_URL with $DATA mounted at /data; /healthz answered 200 after $first_healthz s"

status=$(post_form /register "email=$EMAIL" "password=$PASSWORD" "confirm=$PASSWORD")
case "$status" in 302\ *) ;; *) fail "sign-up answered '$status', not a redirect";; esac
signed_in /household "$JAR" || fail "not signed in after sign-up (the household page does not show $EMAIL)"
say "signed up $EMAIL (the first account) and signed in"

# A stored secret (encrypted with data/fernet.key): a notification target on a port nothing listens on.
status=$(post_form /settings/notifications "url=ntfy://127.0.0.1:9/tas-smoke")
case "$status" in 302\ *) ;; *) fail "adding a notification target answered '$status'";; esac

uid=$(docker exec "$NAME" id -u)
pid1_uid=$(docker exec "$NAME" stat -c %u /proc/1)  # the process the image started, not just exec's user
if [ "$uid" = 0 ] || [ "$pid1_uid" = 0 ]; then
    fail "the app runs as root (exec uid $uid, process 1 uid $pid1_uid)"
fi
say "runs as uid $uid ($(docker exec "$NAME" id -un)), process 1 too"

wait_for_docker_healthy "$started"
docker_healthy=$WAITED
say "Docker's healthcheck: healthy after $docker_healthy s"

# --- restart: the same keys, account, session and stored secret --------------------------------------
keys_before=$(docker exec "$NAME" sha256sum /data/secret_key /data/fernet.key)
cp "$JAR" "$WORK/cookies-before-restart"
say "restarting the container"
started=$(now)
docker restart "$NAME" >/dev/null || fail "docker restart failed"
wait_for_healthz "$started"
restart_healthz=$WAITED
say "/healthz answered 200 again $restart_healthz s after docker restart (stop included)"

[ "$(docker exec "$NAME" sha256sum /data/secret_key /data/fernet.key)" = "$keys_before" ] \
    || fail "secret_key or fernet.key changed across the restart"
signed_in /household "$WORK/cookies-before-restart" || fail "the session from before the restart was lost"
rm -f "$JAR"
status=$(post_form /login "email=$EMAIL" "password=$PASSWORD")
case "$status" in 302\ *) ;; *) fail "sign-in after the restart answered '$status'";; esac
signed_in /household "$JAR" || fail "not signed in after signing in again"
rotated=$(docker exec "$NAME" flask keys rotate 2>&1) || fail "a stored secret no longer decrypts: $rotated"
case "$rotated" in *"Re-encrypted 0 "*|"") fail "no stored secret was found after the restart: $rotated";; esac
say "after the restart: same keys, the old session still valid, signed in again, stored secrets decrypt"

# --- an upgrade: the database one migration behind, as after pulling a newer image -------------------
docker exec "$NAME" flask db downgrade >"$WORK/downgrade.log" 2>&1 \
    || fail "flask db downgrade (one step) failed (the newest migration cannot be undone?): $(tail -n 3 "$WORK/downgrade.log")"
docker restart "$NAME" >/dev/null || fail "docker restart failed"
wait_for_healthz "$(now)"
backups=$(docker exec "$NAME" find /data/backups -name '*.db' 2>/dev/null)
[ -n "$backups" ] || fail "the entrypoint's upgrade wrote no backup to /data/backups"
signed_in /household "$JAR" || fail "not signed in after the upgrade"
say "upgraded on start, after a backup: ${backups#/data/}"

# --- files in the data folder -------------------------------------------------------------------------
for file in tesla_amber_sync.db secret_key fernet.key; do
    mode=$(docker exec "$NAME" stat -c %a "/data/$file" 2>/dev/null) || fail "$file is missing from the data folder"
    [ "$mode" = 600 ] || fail "$file is mode $mode, not 600"
done
open_to_others=$(docker exec "$NAME" find /data -mindepth 1 -perm /077)
[ -z "$open_to_others" ] || fail "readable by others in the data folder: $open_to_others"
say "data folder (mode, name): $(docker exec "$NAME" find /data -mindepth 1 -printf '%m %P, ' | sed 's/, $//')"

started=$(now)
docker stop "$NAME" >/dev/null
stopped=$(seconds_since "$started")
code=$(docker inspect -f '{{.State.ExitCode}}' "$NAME")
[ "$code" = 0 ] || fail "docker stop ended the app with exit code $code, not 0 (killed instead of stopping?)"
say "stopped cleanly in $stopped s"

# --- sizes ---------------------------------------------------------------------------------------------
base_image="${BASE_IMAGE:-$(dockerfile_base)}"
docker image inspect "$base_image" >/dev/null 2>&1 || docker pull -q "$base_image" >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
base_size=$(docker image inspect -f '{{.Size}}' "$base_image" 2>/dev/null || echo "")
python3 - "$IMAGE" "$size" "$base_image" "$base_size" <<'PY'
import sys

image, size, base, base_size = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
if base_size:
    added = f"adds {(size - int(base_size)) / 1e6:.0f} MB over its base {base} ({int(base_size) / 1e6:.0f} MB)"
else:
    added = f"its base {base} is not in the local image store (docker pull it to compare)"
print(f"smoke: image {image} {size / 1e6:.0f} MB; {added}")
PY
say "time to healthy: /healthz $first_healthz s after docker run (keys generated, database created)," \
    "Docker's healthcheck $docker_healthy s (its first check comes after --interval);" \
    "/healthz $restart_healthz s after docker restart"
say "OK"
