"""The repository stands alone: nothing in it reads or names a path outside it.

A user's clone has no sibling folders, so a test or a module that reads one fails there (and only there)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.reference import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
# Built from parts, so this file does not name what it looks for.
OUTSIDE = ("../" + "shared", "/work/" + "shared", "shared/" + "reference")
CHECKED_DIRS = ("app", "tests", "scripts", "docs", "migrations", "docker", ".ci")
CHECKED_FILES = ("README.md", "Makefile", "Dockerfile", "docker-compose.yml", "config.py", "run.py", ".env.example")
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".hypothesis"}


def repository_text_files() -> list[Path]:
    """Every text file of the project that ships or runs (not caches, not the virtualenv)."""
    files = [ROOT / name for name in CHECKED_FILES if (ROOT / name).is_file()]
    for folder in CHECKED_DIRS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and not SKIPPED_PARTS.intersection(path.parts) and path.suffix not in (".png", ".pyc"):
                files.append(path)
    return files


def test_no_file_names_a_path_outside_the_repository():
    offenders = []
    for path in repository_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for needle in OUTSIDE:
            if needle in text:
                offenders.append(f"{path.relative_to(ROOT)} names {needle!r}")
    assert not offenders, "\n".join(offenders)


def test_the_check_sees_the_folders_that_matter():
    # A scan that silently read nothing would pass for ever.
    names = {p.relative_to(ROOT).as_posix() for p in repository_text_files()}
    assert "app/__init__.py" in names and "tests/reference.py" in names and "tests/conftest.py" in names


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_reference_fixtures_are_in_the_repository_and_parse(name):
    from tests.reference import load_fixture

    assert (ROOT / "tests" / "fixtures" / name).is_file()
    assert load_fixture(name)  # non-empty JSON


def test_every_fixture_a_test_names_is_in_the_repository():
    named = set()
    for path in (ROOT / "tests").glob("*.py"):
        named |= set(re.findall(r"[\"']((?:amber|tesla|teslemetry)_[a-z0-9_]+\.json)[\"']", path.read_text(encoding="utf-8")))
    assert len(named) >= 10, named  # the scan found the names the client tests use
    missing = sorted(name for name in named if not (FIXTURES / name).is_file())
    assert not missing, missing
