# syntax=docker/dockerfile:1
# Tesla-Amber-Sync: gunicorn (gunicorn.conf.py) behind docker/entrypoint.sh, as uid 1000, data in /data.
#   docker build -t tesla-amber-sync .     # usually through docker-compose.yml; see docs/deployment.md
# No secret is built in: the session and encryption keys are generated into /data on first start (or
# come from the environment), and .dockerignore keeps .env, data/ and .git out of the build context.

ARG PYTHON_VERSION=3.11

# --- build: the runtime dependencies in a virtual environment (pip and its caches stay here) -------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# pip and setuptools only install: taking them out of the venv keeps 25 MB out of the runtime image.
RUN /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements.txt \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools

# --- runtime --------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# A fixed uid/gid, so a bind-mounted ./data can be given to it: sudo chown -R 1000:1000 ./data
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --gid "${APP_GID}" app \
    && useradd --uid "${APP_UID}" --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && mkdir -p /data \
    && chown app:app /data \
    && chmod 0700 /data

COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The code stays root-owned (read-only for the app); only /data is writable.
COPY . /app
RUN chmod 0755 /app/docker/entrypoint.sh \
    && /opt/venv/bin/python -m compileall -q app migrations config.py gunicorn.conf.py run.py

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FLASK_APP=run.py \
    APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=5001 \
    DATA_DIR=/data \
    GUNICORN_WORKERS=2 \
    GUNICORN_THREADS=4

USER ${APP_UID}:${APP_GID}
EXPOSE 5001
# /healthz answers 200 when the database does; the slim image has no curl, Python is enough.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % (os.environ.get('PORT') or '5001'), timeout=4)"]
# Waits for the database and runs `flask db upgrade`, then execs the command.
ENTRYPOINT ["/app/docker/entrypoint.sh"]
# Workers and threads come from GUNICORN_WORKERS / GUNICORN_THREADS (gunicorn.conf.py). The heartbeat
# file goes to memory (/dev/shm), as gunicorn advises in containers.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "--worker-tmp-dir", "/dev/shm", "run:app"]
