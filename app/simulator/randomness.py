"""Deterministic pseudo-randomness: a number in [0, 1) that is a pure function of (seed, key)."""
from __future__ import annotations

import hashlib


def unit(seed: int, *key: object) -> float:
    """A uniform-looking value in [0, 1) fixed by `seed` and `key` (same inputs, same value, any process)."""
    digest = hashlib.blake2b(repr((seed,) + key).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64
