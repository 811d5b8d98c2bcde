"""Fault injection rules: which endpoint misbehaves, how, how often. Seeded, so a run is repeatable."""
from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass, field


class FaultSpecError(ValueError):
    """A fault rule that cannot be applied; the message says which field."""


@dataclass
class Fault:
    """One rule. `endpoint` is an endpoint name or an fnmatch pattern ("amber_*", "*")."""

    endpoint: str = "*"
    status: int | None = None  # None: answer normally (latency-only or malformed-200 faults)
    rate: float = 1.0
    latency_ms: int = 0
    count: int | None = None  # how many more times it may fire; None = forever
    malformed: bool = False
    retry_after: int | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def matches(self, endpoint: str) -> bool:
        """Whether this rule applies to `endpoint`."""
        return fnmatch.fnmatchcase(endpoint, self.endpoint)

    def fires(self) -> bool:
        """Draw whether the rule fires for one request (consumes `count` when it does)."""
        if self.count is not None and self.count <= 0:
            return False
        if self.rate < 1.0 and self._rng.random() >= self.rate:
            return False
        if self.count is not None:
            self.count -= 1
        return True

    def describe(self) -> dict[str, object]:
        """JSON view of the rule."""
        return {
            "endpoint": self.endpoint,
            "status": self.status,
            "rate": self.rate,
            "latency_ms": self.latency_ms,
            "count": self.count,
            "malformed": self.malformed,
            "retry_after": self.retry_after,
        }


def parse_fault(spec: object, seed: int, index: int) -> Fault:
    """Build a Fault from the JSON of `POST /_sim/faults`; its random stream is fixed by (seed, index)."""
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault must be a JSON object")
    unknown = set(spec) - {"endpoint", "status", "rate", "latency_ms", "count", "malformed", "retry_after"}
    if unknown:
        raise FaultSpecError(f"unknown fault fields: {', '.join(sorted(unknown))}")
    fault = Fault(
        endpoint=str(spec.get("endpoint", "*")),
        status=spec.get("status"),
        rate=float(spec.get("rate", 1.0)),
        latency_ms=int(spec.get("latency_ms", 0)),
        count=spec.get("count"),
        malformed=bool(spec.get("malformed", False)),
        retry_after=spec.get("retry_after"),
        _rng=random.Random(f"{seed}:fault:{index}"),
    )
    if fault.status is not None and not (isinstance(fault.status, int) and 100 <= fault.status <= 599):
        raise FaultSpecError("status must be an HTTP status code")
    if not 0.0 <= fault.rate <= 1.0:
        raise FaultSpecError("rate must be between 0 and 1")
    if fault.count is not None and not isinstance(fault.count, int):
        raise FaultSpecError("count must be an integer")
    if fault.status is None and not fault.malformed and not fault.latency_ms:
        raise FaultSpecError("a fault needs a status, malformed or latency_ms")
    return fault


def truncate_body(body: bytes) -> bytes:
    """A malformed body: the real one cut off mid-way, as a dropped connection or a bad proxy leaves it."""
    return body[: max(1, len(body) // 2)]
