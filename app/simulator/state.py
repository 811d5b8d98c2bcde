"""Everything one simulator instance knows: settings, clock, Powerwall, tokens, faults, budgets."""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, fields
from typing import Callable
from zoneinfo import ZoneInfo

from . import identity
from .clock import Clock, SimClock
from .faults import Fault
from .oauth import TokenStore
from .powerwall import Powerwall
from .ratelimit import RateLimiter

DEFAULT_SEED = 20261124
TOU_INVALID_CHOICES = ("result_false", "400", "422", "normalise")
FLEET_REGION_CHOICES = ("ok", "unregistered", "wrong_region")


@dataclass
class SimConfig:
    """Tunable behaviour; every field can be passed to create_simulator_app or POST /_sim/config."""

    estimate_seconds: float = 20.0  # a 5-minute price is confirmed this long into its interval
    access_token_ttl: int = 28800  # Fleet access token lifetime (s)
    interval_length: int = 30  # the Amber site's billing interval (5 or 30)
    ignore_resolution: bool = False  # answer with interval_length whatever `resolution` asks
    five_minute_horizon_minutes: int = 60  # 5-minute forecasts are near term only
    tou_invalid: str = "result_false"  # how an invalid tariff is refused: result_false, 400, 422, normalise
    fleet_region: str = "ok"  # ok, unregistered (412 until partner_accounts), wrong_region (421)
    amber_rate_limit: int = 50  # per token per window; 0 disables
    amber_rate_window: int = 300
    teslemetry_rate_limit: int = 30
    teslemetry_rate_window: int = 60
    fleet_rate_limit: int = 0  # Tesla publishes no current energy limit; off unless asked for
    fleet_rate_window: int = 60
    # Benchmarks: any other well-formed site id (26-character ULID) answers as the demo site, so many
    # users can spread over many Amber sites. Off by default: an unknown site is a 404.
    amber_site_aliases: bool = False

    def update(self, changes: dict[str, object]) -> None:
        """Apply changes from JSON, checking names, types and choices."""
        known = {f.name: f for f in fields(self)}
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown config keys: {', '.join(sorted(unknown))}")
        candidate = asdict(self)
        for name, value in changes.items():
            current = candidate[name]
            if isinstance(current, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
            elif isinstance(current, (int, float)):
                if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                    raise ValueError(f"{name} must be a non-negative number")
                value = type(current)(value)
            elif not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            candidate[name] = value
        if candidate["interval_length"] not in (5, 30):
            raise ValueError("interval_length must be 5 or 30")
        if candidate["tou_invalid"] not in TOU_INVALID_CHOICES:
            raise ValueError(f"tou_invalid must be one of {', '.join(TOU_INVALID_CHOICES)}")
        if candidate["fleet_region"] not in FLEET_REGION_CHOICES:
            raise ValueError(f"fleet_region must be one of {', '.join(FLEET_REGION_CHOICES)}")
        for name, value in candidate.items():
            setattr(self, name, value)


class SimulatorState:
    """Mutable simulator state; hold `lock` while reading or changing it."""

    def __init__(
        self,
        clock: Clock | None,
        seed: int,
        config: dict[str, object],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.sleep = sleep
        self.clock = SimClock(clock)
        self.tz = ZoneInfo(identity.SITE_TIME_ZONE)
        self._initial_config = dict(config)
        self.reset()

    def reset(self) -> None:
        """Back to the state at creation: settings, clock offset, battery, tokens, faults, counters."""
        with self.lock:
            self.config = SimConfig()
            self.config.update(self._initial_config)
            self.clock.reset()
            self.powerwall = Powerwall(seed=self.seed, tz=self.tz)
            self.powerwall.advance(self.clock())
            # More households than one (tests, benchmarks): each further site id gets its own Powerwall.
            self.powerwalls: dict[str, Powerwall] = {str(identity.TESLA_ENERGY_SITE_ID): self.powerwall}
            self.tokens = TokenStore(access_ttl_seconds=self.config.access_token_ttl)
            self.tokens.seed_demo()
            self.faults: list[Fault] = []
            self.fault_serial = 0
            self.partner_registered = False
            self.partner_domains: list[str] = []
            self.tou_pushes: list[dict[str, object]] = []
            self.request_counts: dict[str, int] = {}
            self.limiters = {
                "amber": RateLimiter(self.config.amber_rate_limit, self.config.amber_rate_window),
                "teslemetry": RateLimiter(self.config.teslemetry_rate_limit, self.config.teslemetry_rate_window),
                "fleet": RateLimiter(self.config.fleet_rate_limit, self.config.fleet_rate_window),
            }

    def apply_config(self, changes: dict[str, object]) -> None:
        """Change settings at run time; budgets restart when their limits change."""
        with self.lock:
            self.config.update(changes)
            self.tokens.access_ttl_seconds = self.config.access_token_ttl
            for name in ("amber", "teslemetry", "fleet"):
                limit = getattr(self.config, f"{name}_rate_limit")
                window = getattr(self.config, f"{name}_rate_window")
                if (self.limiters[name].limit, self.limiters[name].window_seconds) != (limit, window):
                    self.limiters[name] = RateLimiter(limit, window)

    def powerwall_for(self, site_id: str) -> Powerwall | None:
        """The Powerwall of `site_id`: the main one, or one of identity.EXTRA_SITES further ids (made on
        first use, each with its own seed); None for any other id."""
        found = self.powerwalls.get(site_id)
        if found is not None:
            return found
        if not site_id.isdigit():
            return None
        offset = int(site_id) - identity.TESLA_ENERGY_SITE_ID
        if not 0 < offset < identity.EXTRA_SITES:
            return None
        with self.lock:
            found = self.powerwalls.get(site_id)
            if found is None:
                found = self.powerwalls[site_id] = Powerwall(seed=self.seed + offset, tz=self.tz)
                found.advance(self.clock())
        return found

    def now(self):
        """The simulated time (aware UTC)."""
        return self.clock()
