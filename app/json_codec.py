"""JSON on the sync's hot paths (Amber's answers, the tariff sent to Tesla, the JSON columns): orjson.

orjson is a well-kept C implementation that reads and writes JSON several times faster than Python's `json`
module; a push serialises its tariff and its 48-slot explanation, and every sync reads Amber's answers.
Differences that matter here: it writes compactly (no spaces), turns NaN and infinities into null (Python
writes `NaN`, which is not JSON and which PostgreSQL refuses), and refuses to read such literals: for those,
and for text that is not UTF-8, `loads` falls back to Python's reader, so an Amber price sent as `NaN` still
reaches the price sanity check, and a row stored by an older version still reads."""
from __future__ import annotations

import json
from typing import Any

import orjson


def dumps_bytes(value: Any) -> bytes:
    """`value` as compact UTF-8 JSON (keys that are not strings written as strings, as Python's json does)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


def dumps(value: Any) -> str:
    """`value` as compact JSON text, as `dumps_bytes` writes it."""
    return dumps_bytes(value).decode()


def loads(text: str | bytes) -> Any:
    """Parse JSON; what orjson refuses (NaN, Infinity, another encoding) goes through Python's reader, which
    raises ValueError for what is not JSON at all."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
