"""Where the reference payloads live: `tests/fixtures/` (provenance in its README).

They are part of the repository, so a fresh clone runs its tests with nothing beside it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> Any:
    """The parsed JSON of one reference fixture."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
