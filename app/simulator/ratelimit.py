"""Fixed-window request budgets per token, on the simulated clock."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Decision:
    """Outcome of one request against a budget."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # seconds until the window resets


@dataclass
class RateLimiter:
    """`limit` requests per `window_seconds` per key; the window starts at the key's first request."""

    limit: int
    window_seconds: int
    _windows: dict[str, tuple[datetime, int]] = field(default_factory=dict)

    def hit(self, key: str, now: datetime) -> Decision:
        """Count one request for `key` at `now` (refused requests are not counted)."""
        start, used = self._windows.get(key, (now, 0))
        if now >= start + timedelta(seconds=self.window_seconds) or now < start:
            start, used = now, 0
        reset = math.ceil((start + timedelta(seconds=self.window_seconds) - now).total_seconds())
        if used >= self.limit:
            self._windows[key] = (start, used)
            return Decision(False, self.limit, 0, reset)
        used += 1
        self._windows[key] = (start, used)
        return Decision(True, self.limit, self.limit - used, reset)

    def policy(self) -> str:
        """The `RateLimit-Policy` header value (IETF draft format)."""
        return f"{self.limit};w={self.window_seconds}"
