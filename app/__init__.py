"""Tesla-Amber-Sync: the Flask application factory."""
from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from flask import Flask, jsonify, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError

from app import clock, json_codec
from app.crypto import init_app_keys
from app.db_files import create_private, secure_sqlite_files, sqlite_file
from app.extensions import csrf, db, login_manager, migrate
from config import BASE_DIR, Config, config_for

log = logging.getLogger(__name__)


def create_app(config: Config | str | None = None) -> Flask:
    """Build the app for `config` (a Config object, an environment name, or APP_ENV)."""
    cfg = config if isinstance(config, Config) else config_for(config)
    app = Flask(__name__)
    app.config.from_object(cfg)
    from app import observability

    observability.init_app(app)  # logging first; request id before every other before_request hook

    tune_garbage_collector(app.config["GC_THRESHOLD"])
    Path(app.config["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    app.extensions["crypto"] = init_app_keys(app.config)
    clock.init_app(app)

    if app.config["SQLALCHEMY_DATABASE_URI"] not in ("sqlite://", "sqlite:///:memory:"):
        # Every sync worker may hold a connection while it writes; the pages need a few more.
        # (An in-memory SQLite database has a single static connection: no pool to size.)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
            "pool_size": app.config["SYNC_MAX_WORKERS"] + 8,
            "max_overflow": 10,
        }
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
        **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
        "connect_args": database_timeouts(app.config),
        # The JSON columns (a push's tariff and explanation, price signatures) through orjson.
        "json_serializer": json_codec.dumps,
        "json_deserializer": json_codec.loads,
    }
    database_file = sqlite_file(make_url(app.config["SQLALCHEMY_DATABASE_URI"]))
    # No ping before every checkout (a round trip on each of a sync's transactions): a SQLite connection is
    # a local file that never goes stale, and a PostgreSQL one is pinged only after it sat idle (below).
    app.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] = False
    if database_file is not None:
        secure_sqlite_files(database_file)  # e-mails, password hashes and encrypted tokens: 0600
    db.init_app(app)
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            ping_idle_connections(db.engine, IDLE_PING_SECONDS)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    csrf.init_app(app)
    _configure_login(app)

    from app.security import HttpsAwareSessionInterface, install_proxy_fix, install_security_headers

    app.session_interface = HttpsAwareSessionInterface()
    install_proxy_fix(app)
    install_security_headers(app)

    from app.admin import bp as admin_bp
    from app.api import bp as api_bp
    from app.dashboard import bp as dashboard_bp
    from app.auth import bp as auth_bp
    from app.main import bp as main_bp
    from app.settings import bp as settings_bp
    from app.tesla_oauth import bp as tesla_oauth_bp
    from app.households.routes import bp as households_bp
    from app.notify.routes import bp as notify_bp
    from app.money.routes import bp as money_bp

    app.register_blueprint(main_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(settings_bp)
    app.register_blueprint(admin_bp)
    app.register_blueprint(tesla_oauth_bp)
    app.register_blueprint(households_bp)
    app.register_blueprint(notify_bp)
    app.register_blueprint(money_bp)

    from app.errors import register_error_handlers

    register_error_handlers(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def database_timeouts(config) -> dict[str, object]:
    """The driver's connect arguments that make database trouble fail fast instead of hanging.

    PostgreSQL: give up connecting after DB_CONNECT_TIMEOUT_SECONDS, cancel a statement after
    DB_STATEMENT_TIMEOUT_SECONDS (server side), and drop a connection whose packets vanish (the server
    cannot even say the statement was cancelled) a little after that. SQLite: wait for another writer
    DB_BUSY_TIMEOUT_SECONDS."""
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() == "sqlite":
        return {"timeout": float(config["DB_BUSY_TIMEOUT_SECONDS"])}
    if url.get_backend_name() == "postgresql":
        statement_ms = int(config["DB_STATEMENT_TIMEOUT_SECONDS"] * 1000)
        return {
            "connect_timeout": int(config["DB_CONNECT_TIMEOUT_SECONDS"]),
            "options": f"-c statement_timeout={statement_ms}",
            "tcp_user_timeout": statement_ms + 5000,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 5,
            "keepalives_count": 3,
        }
    return {}


# A pooled connection unused for this long is pinged before it is handed out again.
IDLE_PING_SECONDS = 10.0


def tune_garbage_collector(threshold: int) -> None:
    """Let the youngest generation grow to `threshold` new container objects before a collection (0: leave
    Python's thresholds alone). Process-wide: every process of the app runs syncs or pages that allocate in
    bursts, and with Python's default of 700 the full collections (each a walk over every object in the
    heap) came every few dozen households of a tick. The older generations keep Python's ratios."""
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection before handing it out only if it sat in the pool for `idle_seconds`: one
    that went stale (the server restarted, a firewall dropped it) is replaced, as pool_pre_ping would, but
    a busy sync tick, which checks connections out and back in every few milliseconds, pays no round trip.
    (A connection dropped while in steady use fails its next statement once; the pool then replaces it
    and every connection as old.)"""

    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_seconds:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception:  # whatever went wrong with SELECT 1, this connection is no good
            alive = False
        if not alive:
            raise DisconnectionError("the pooled connection went stale")  # the pool discards it and connects anew


@event.listens_for(Engine, "do_connect")
def _sqlite_private_file(dialect, connection_record, cargs, cparams) -> None:
    # Before SQLite opens the file: a missing one is created 0600 (a URI filename is left to SQLite).
    if dialect.name == "sqlite" and cargs and not cparams.get("uri") and str(cargs[0]) not in ("", ":memory:"):
        create_private(Path(cargs[0]))


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        for _, name, path in cursor.execute("PRAGMA database_list").fetchall():
            if name == "main" and path:
                secure_sqlite_files(Path(path))  # one an older version or another tool left 0644
        # SQLite ignores ON DELETE CASCADE unless asked per connection.
        cursor.execute("PRAGMA foreign_keys=ON")
        # A writer waits for another (sync threads, gunicorn workers) up to DB_BUSY_TIMEOUT_SECONDS, the
        # driver's `timeout` (database_timeouts); WAL lets pages read while a sync writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        # With WAL this is still crash-safe (no corruption); only the last commit may be lost on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def _configure_login(app: Flask) -> None:
    from app.models import User
    from app.security import is_public_endpoint

    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(identity: str) -> User | None:
        user_id, _, nonce = identity.partition(":")
        if not user_id.isdigit() or not nonce:
            return None
        user = db.session.get(User, int(user_id))
        if user is None or user.is_disabled or user.session_nonce != nonce:
            return None
        return user

    @login_manager.unauthorized_handler
    def unauthorized():
        if request.path.startswith("/api/"):
            return jsonify(error="Sign in first.", status=401), 401
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("auth.login", next=target))

    from app.security import reject_nul_bytes

    app.before_request(reject_nul_bytes)

    @app.before_request
    def require_login():
        # Every view needs a signed-in user unless marked @public: a new route cannot forget it.
        if is_public_endpoint(app, request.endpoint):
            return None
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        return None
