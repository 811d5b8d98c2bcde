"""The Docker packaging, checked statically (CI has no Docker engine): the Dockerfile, the compose file
(also through `docker compose config` where Compose v2 is installed), .dockerignore, the entrypoint's order
and the deployment guide's promises.

tests/test_entrypoint_gunicorn.py runs the same entrypoint and command outside Docker; scripts/docker_smoke.sh
builds and runs the image for real (minutes, so not in CI)."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
import yaml  # PyYAML comes with `responses` (requirements-dev.txt)

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "docker" / "entrypoint.sh"
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|FERNET|PRIVATE|_KEY$", re.I)


# --- Dockerfile ------------------------------------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with line continuations joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue  # also inside a continuation, as Docker does
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        keyword, _, args = current.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    return instructions


def stages(instructions: list[tuple[str, str]]) -> tuple[dict[str, str], list[list[tuple[str, str]]]]:
    """(global ARG defaults, the instructions of each stage from its FROM on)."""
    global_args: dict[str, str] = {}
    result: list[list[tuple[str, str]]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            result.append([])
        if result:
            result[-1].append((keyword, args))
        elif keyword == "ARG":
            name, _, default = args.partition("=")
            global_args[name] = default
    return global_args, result


def expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), value)


def env_pairs(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args))


@pytest.fixture(scope="module")
def dockerfile():
    global_args, parsed = stages(dockerfile_instructions((ROOT / "Dockerfile").read_text()))
    return global_args, parsed


def image_command() -> tuple[list[str], list[str]]:
    """The final stage's ENTRYPOINT and CMD (exec form), as the image runs them."""
    _, parsed = stages(dockerfile_instructions((ROOT / "Dockerfile").read_text()))
    final = dict((k, a) for k, a in parsed[-1] if k in ("ENTRYPOINT", "CMD"))
    return json.loads(final["ENTRYPOINT"]), json.loads(final["CMD"])


def test_every_stage_is_a_slim_python_image(dockerfile):
    global_args, parsed = dockerfile
    assert len(parsed) >= 2, "a build stage keeps pip's work out of the runtime image"
    for stage in parsed:
        image = expand(stage[0][1].split()[0], global_args)
        assert re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?", image), image


def test_runtime_stage_runs_as_a_fixed_non_root_user(dockerfile):
    _, parsed = dockerfile
    final = parsed[-1]
    args = {name: default for k, a in final if k == "ARG" for name, _, default in [a.partition("=")]}
    users = [(i, expand(a, args)) for i, (k, a) in enumerate(final) if k == "USER"]
    assert users, "the runtime stage must switch to a non-root user"
    index, user = users[-1]
    assert user == "1000:1000", user  # documented: sudo chown -R 1000:1000 ./data
    keywords = [k for k, _ in final]
    assert index < keywords.index("ENTRYPOINT") and index < keywords.index("CMD")
    assert index > max(i for i, k in enumerate(keywords) if k in ("RUN", "COPY"))
    setup = " ".join(a for k, a in final if k == "RUN")
    assert "useradd --uid" in setup and "mkdir -p /data" in setup and "chown app:app /data" in setup


def test_dependencies_come_from_requirements_txt_only(dockerfile):
    _, parsed = dockerfile
    runs = [a for stage in parsed for k, a in stage if k == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs and all("-r /tmp/requirements.txt" in r and "--no-cache-dir" in r for r in installs)
    assert "requirements-dev" not in (ROOT / "Dockerfile").read_text()
    final = parsed[-1]
    assert ("COPY", "--from=build /opt/venv /opt/venv") in final
    assert not any("pip install" in a for k, a in final if k == "RUN"), "nothing is installed in the runtime stage"


def test_environment_and_command_serve_gunicorn_through_its_config(dockerfile):
    _, parsed = dockerfile
    env: dict[str, str] = {}
    for k, a in parsed[-1]:
        if k == "ENV":
            env.update(env_pairs(a))
    assert env["HOST"] == "0.0.0.0" and env["PORT"] == "5001" and env["DATA_DIR"] == "/data"
    assert env["PYTHONUNBUFFERED"] == "1" and env["FLASK_APP"] == "run.py"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert {"GUNICORN_WORKERS", "GUNICORN_THREADS"} <= env.keys()
    conf = (ROOT / "gunicorn.conf.py").read_text()
    assert '_env("GUNICORN_WORKERS"' in conf and '_env("GUNICORN_THREADS"' in conf and "_env('HOST'" in conf
    entrypoint, command = image_command()
    assert entrypoint == ["/app/docker/entrypoint.sh"]
    assert command[:3] == ["gunicorn", "-c", "gunicorn.conf.py"] and command[-1] == "run:app"
    assert ("WORKDIR", "/app") in parsed[-1] and ("COPY", ". /app") in parsed[-1]
    assert ("EXPOSE", "5001") in parsed[-1]


def test_healthcheck_asks_healthz(dockerfile):
    _, parsed = dockerfile
    checks = [a for k, a in parsed[-1] if k == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition(" CMD ")
    assert "--interval=" in options and "--start-period=" in options
    argv = json.loads(command)
    assert argv[0] == "python" and "/healthz" in argv[-1] and "PORT" in argv[-1]


def test_no_secret_is_built_in(dockerfile):
    _, parsed = dockerfile
    for stage in parsed:
        for keyword, args in stage:
            if keyword == "ENV":
                assert not [n for n in env_pairs(args) if SECRET_NAME.search(n)], args
            if keyword == "ARG":
                assert not SECRET_NAME.search(args.partition("=")[0]), args
            if keyword in ("COPY", "ADD"):
                assert ".env" not in args.split() and "data" not in args.split(), args


# --- .dockerignore ---------------------------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    """Whether Docker leaves `path` out of the build context: the last matching rule wins, and a rule
    matching a parent folder covers what is inside it."""
    parents = [path] + ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 1)]
    excluded = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw[1:] if negated else raw
        pattern = os.path.normpath(pattern.strip().lstrip("/"))
        if any(_pattern_regex(pattern).fullmatch(p) for p in parents):
            excluded = not negated
    return excluded


@pytest.fixture(scope="module")
def ignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".env", ".env.production", ".venv/bin/python", "data/tesla_amber_sync.db", "data/fernet.key",
        "data/secret_key", ".git/HEAD", "tests/test_docker.py", "test-artifacts/screen.png",
        ".pytest_cache/v/cache", ".hypothesis/examples/x", "app/__pycache__/cli.cpython-311.pyc",
        "requirements-dev.txt", "pytest.ini", "tesla_amber_sync.db",
    ],
)
def test_dockerignore_keeps_secrets_state_and_tests_out(ignore_patterns, path):
    assert dockerignore_excludes(ignore_patterns, path)


def test_dockerignore_keeps_what_the_image_runs(ignore_patterns):
    needed = ["config.py", "gunicorn.conf.py", "run.py", "requirements.txt", "docker/entrypoint.sh"]
    for folder in ("app", "migrations"):
        needed += [
            str(p.relative_to(ROOT)) for p in (ROOT / folder).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts
        ]
    assert len(needed) > 30
    kept_out = [p for p in needed if dockerignore_excludes(ignore_patterns, p)]
    assert not kept_out


def test_the_ignore_matcher_follows_docker_rules():
    assert dockerignore_excludes(["*.md", "!README.md"], "docs.md")
    assert not dockerignore_excludes(["*.md", "!README.md"], "README.md")
    assert not dockerignore_excludes(["*.md"], "app/simulator/README.md")  # no ** : top level only
    assert dockerignore_excludes(["**/__pycache__"], "a/b/__pycache__/x.pyc")
    assert dockerignore_excludes(["data/"], "data/x/y")


# --- docker-compose.yml ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def compose_text() -> str:
    return (ROOT / "docker-compose.yml").read_text()


@pytest.fixture(scope="module")
def compose(compose_text) -> dict:
    return yaml.safe_load(compose_text)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def test_web_service_serves_port_5001_with_data_mounted_and_restarts(compose):
    web = compose["services"]["web"]
    assert "profiles" not in web, "web always runs"
    assert web["build"] == "." and web["init"] is True
    assert "5001:5001" in [str(p) for p in web["ports"]]
    assert web["restart"] in ("unless-stopped", "always")
    env = environment(web)
    assert env["HOST"] == "0.0.0.0" and env["PORT"] == "5001"
    mounts = dict(v.split(":", 1) for v in web["volumes"])
    assert mounts["./data"] == env["DATA_DIR"] == "/data"
    assert "command" not in web and "entrypoint" not in web, "the image's entrypoint and gunicorn command run"
    assert env["DATABASE_URL"] == "${DATABASE_URL:-}"
    assert env["SCHEDULER"] == "${SCHEDULER:-embedded}"
    assert web["env_file"] == [{"path": ".env", "required": False}]


def test_web_service_keeps_the_images_healthcheck_on_healthz(compose):
    web = compose["services"]["web"]
    # Compose inherits the image's HEALTHCHECK (GET /healthz, which writes a heartbeat) unless told otherwise.
    assert not (web.get("healthcheck") or {}).get("disable") and (web.get("healthcheck") or {}).get("test") != ["NONE"]
    text = (ROOT / "Dockerfile").read_text()
    assert "HEALTHCHECK" in text and "/healthz" in text


def compose_v2() -> list[str] | None:
    """The command of an installed Docker Compose v2 (`docker compose` or `docker-compose`), if any."""
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            result = subprocess.run([*command, "version", "--short"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if result.returncode == 0 and re.match(r"v?2\.|v?[3-9]\.", result.stdout.strip()):
            return command
    return None


@pytest.mark.skipif(compose_v2() is None, reason="Docker Compose v2 is not installed")
@pytest.mark.parametrize(
    "dot_env", [None, "SCHEDULER=off\nREGISTRATION=closed\nHOST=127.0.0.1\nDATA_DIR=./data\n"], ids=["no .env", "a .env"]
)
def test_docker_compose_reads_the_file_with_and_without_dot_env(tmp_path, dot_env):
    # The real parser: a first run has no .env (nothing to write by hand); a .env's settings reach the
    # app, except the ones the container needs fixed. `config` needs no engine.
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    if dot_env is not None:
        (tmp_path / ".env").write_text(dot_env)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_") and k not in ("SCHEDULER", "DATABASE_URL")}
    result = subprocess.run(
        [*compose_v2(), "--project-directory", str(tmp_path), "-f", str(tmp_path / "docker-compose.yml"),
         "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert result.returncode == 0, result.stderr
    web = json.loads(result.stdout)["services"]["web"]
    assert [(p["target"], str(p["published"])) for p in web["ports"]] == [(5001, "5001")]
    assert [(v["type"], v["source"], v["target"]) for v in web["volumes"]] == [("bind", str(tmp_path / "data"), "/data")]
    assert web["restart"] == "unless-stopped" and web["init"] is True
    assert "healthcheck" not in web, "the image's HEALTHCHECK (/healthz) applies"
    environment = web["environment"]
    assert (environment["HOST"], environment["PORT"], environment["DATA_DIR"]) == ("0.0.0.0", "5001", "/data")
    if dot_env is None:
        assert environment["SCHEDULER"] == "embedded" and "REGISTRATION" not in environment
    else:
        assert environment["SCHEDULER"] == "off" and environment["REGISTRATION"] == "closed"


def test_postgres_is_optional_behind_a_profile(compose):
    postgres = compose["services"]["postgres"]
    assert postgres["profiles"] == ["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert "ports" not in postgres, "the database is reachable on the compose network only"
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    env = environment(postgres)
    assert env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    dependency = compose["services"]["web"]["depends_on"]["postgres"]
    assert dependency == {"condition": "service_healthy", "required": False}


def test_no_literal_secret_in_compose(compose):
    for name, service in compose["services"].items():
        for key, value in environment(service).items():
            if SECRET_NAME.search(key):
                assert value.startswith("${") or value == "", f"{name}.{key} holds a literal secret"


def uncommented_scheduler(compose_text: str) -> dict:
    """The compose file with the commented scheduler service switched on, as the guide says to."""
    lines = compose_text.splitlines()
    start = lines.index("  # scheduler:")
    end = start
    while end < len(lines) and lines[end].startswith("  #"):
        end += 1
    block = [re.sub(r"^  # ", "  ", line) for line in lines[start:end]]
    return yaml.safe_load("\n".join(lines[:start] + block + lines[end:]))


def test_commented_scheduler_service_runs_flask_scheduler_run_after_web(compose_text, compose):
    assert "scheduler" not in compose["services"], "the dedicated scheduler is opt-in"
    enabled = uncommented_scheduler(compose_text)
    scheduler = enabled["services"]["scheduler"]
    assert scheduler["command"] == ["flask", "scheduler", "run"]
    assert scheduler["image"] == enabled["services"]["web"]["image"]
    env = environment(scheduler)
    assert env["DATA_DIR"] == "/data" and env["RUN_MIGRATIONS"] == "0"
    assert env["DATABASE_URL"] == "${DATABASE_URL:-}"
    assert scheduler["depends_on"] == {"web": {"condition": "service_healthy"}}
    assert scheduler["healthcheck"] == {"disable": True}
    assert "./data:/data" in scheduler["volumes"] and "ports" not in scheduler
    assert "SCHEDULER=off" in compose_text


# --- docker/entrypoint.sh --------------------------------------------------------------------------

def test_entrypoint_is_posix_sh_and_waits_then_migrates_then_execs():
    text = ENTRYPOINT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert os.stat(ENTRYPOINT).st_mode & stat.S_IXUSR, "git must keep the executable bit"
    code = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert code[0] == "set -eu"
    wait = next(i for i, line in enumerate(code) if 'python -c "$probe"' in line)
    upgrade = next(i for i, line in enumerate(code) if line.startswith("flask db upgrade"))
    assert wait < upgrade < code.index('exec "$@"') == len(code) - 1
    assert "set -- gunicorn -c gunicorn.conf.py run:app" in code  # the default without a command
    result = subprocess.run(["sh", "-n", str(ENTRYPOINT)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_entrypoint_passes_shellcheck_as_posix_sh():
    result = subprocess.run(["shellcheck", "-s", "sh", str(ENTRYPOINT)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout


def test_docker_smoke_script_is_executable_bash():
    script = ROOT / "scripts" / "docker_smoke.sh"
    assert script.read_text().startswith("#!/usr/bin/env bash\n")
    assert os.stat(script).st_mode & stat.S_IXUSR, "git must keep the executable bit"
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr
    if shutil.which("shellcheck"):
        result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stdout


def test_every_variable_the_entrypoint_reads_is_documented():
    names = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):-", ENTRYPOINT.read_text())) - {"FLASK_APP"}  # set by the image
    example = (ROOT / ".env.example").read_text().splitlines()
    for name in names:
        index = next((i for i, line in enumerate(example) if line.startswith(f"{name}=")), None)
        assert index is not None and example[index - 1].startswith("# "), f"{name} is not in .env.example"
    compose_vars = set(re.findall(r"\$\{(\w+)", (ROOT / "docker-compose.yml").read_text()))
    assert compose_vars <= {line.split("=", 1)[0] for line in example if "=" in line and not line.startswith("#")}


# --- docs/deployment.md ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    "promise",
    [
        "docker compose up -d", "docker compose --profile postgres up -d", "DATABASE_URL=postgresql://",
        "chown -R 1000:1000 ./data", "docker compose exec web flask db backup /data/backup.db", "pg_dump",
        "pg_restore", "docker compose pull", "/.well-known/appspecific/com.tesla.3p.public-key.pem",
        "/tesla-fleet/callback", "TRUST_PROXY=1", "SESSION_COOKIE_SECURE", "SCHEDULER=off",
        "flask scheduler run", "docker compose logs", "/healthz", "X-Forwarded-Proto", "reverse_proxy",
        "proxy_pass", "fernet.key", "scripts/docker_smoke.sh",
    ],
)
def test_deployment_guide_covers(promise):
    assert promise in (ROOT / "docs" / "deployment.md").read_text()
