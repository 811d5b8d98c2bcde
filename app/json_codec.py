"""JSON on the sync's hot paths (Amber's answers, the tariff sent to Tesla, the JSON columns): orjson.

orjson is a well-kept C implementation that reads and writes JSON several times faster than Python's `json`
module; a push serialises its tariff and its 48-slot explanation, and every sync reads Amber's answers.
Differences that matter here: it writes compactly (no spaces), turns NaN and infinities into null (Python
writes `NaN`, which is not JSON and which PostgreSQL refuses), and refuses to read such literals: for those,
and for text that is not UTF-8, `loads` falls back to Python's reader, so an Amber price sent as `NaN` still
reaches the price sanity check, and a row stored by an older version still reads."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson


def dumps_bytes(
    value: Any, *, default: Callable[[Any], Any] | None = None, passthrough_datetime: bool = False, sort_keys: bool = False
) -> bytes:
    """`value` as compact UTF-8 JSON (keys that are not strings written as strings, as Python's json does);
    `default` turns what orjson cannot write into what it can, and with `passthrough_datetime` it is given the
    datetimes, dates and times too (orjson writes them as ISO 8601 itself otherwise); `sort_keys` writes every
    object's keys in order, so equal documents give equal bytes whatever order their dicts were built in. What
    `default` raises reaches the caller as itself (orjson would wrap it in a TypeError of its own)."""
    option = (orjson.OPT_NON_STR_KEYS | (orjson.OPT_PASSTHROUGH_DATETIME if passthrough_datetime else 0)
              | (orjson.OPT_SORT_KEYS if sort_keys else 0))
    try:
        return orjson.dumps(value, default=default, option=option)
    except orjson.JSONEncodeError as error:
        if default is not None and error.__cause__ is not None:
            raise error.__cause__ from None
        raise


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
