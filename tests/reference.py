"""Where the shared reference fixtures live: `../shared/reference/fixtures` beside the project root
(that is how every developer and CI checks the project out)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "fixtures"


def load_fixture(name: str) -> Any:
    """The parsed JSON of one reference fixture."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
