"""Tesla `tariff_content_v2`: the validation Tesla applies on upload (tesla-energy-api.md §6.3), the
normalisation it applies to prices, and rate lookup at a local time. Written from the reference,
independently of the app's tariff builder."""
from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime

MINUTES_PER_DAY = 1440
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
PERIOD_FIELDS = ("fromDayOfWeek", "toDayOfWeek", "fromHour", "fromMinute", "toHour", "toMinute")
REQUIRED_KEYS = (
    "version", "code", "name", "utility", "currency",
    "daily_charges", "demand_charges", "energy_charges", "seasons",
)
CURRENCIES = ("USD", "EUR", "GBP", "AUD")  # AUD is missing from Tesla's list but works in practice
LEAP_YEAR = 2024  # season tiling is checked on every calendar day, 29 February included


class TariffError(ValueError):
    """The tariff is structurally invalid; the message says where."""


@dataclass
class Season:
    """One season: its inclusive calendar range and the period name of every minute of the week."""

    name: str
    start: tuple[int, int]
    end: tuple[int, int]
    minute_periods: list[str]

    def covers(self, day: date) -> bool:
        """Whether `day` (month, day) falls in the season; ranges may wrap the year end."""
        key = (day.month, day.day)
        if self.start <= self.end:
            return self.start <= key <= self.end
        return key >= self.start or key <= self.end


@dataclass
class PriceSchedule:
    """One side (buy or sell) of a tariff, compiled for lookup."""

    seasons: list[Season]
    rates: dict[str, dict[str, float]] = field(default_factory=dict)

    def season_on(self, day: date) -> Season | None:
        """The season covering `day`."""
        return next((s for s in self.seasons if s.covers(day)), None)

    def price(self, season: str, period: str) -> float | None:
        """Tesla's lookup: season rate, else the ALL season's rate for the period, else ALL/ALL."""
        for key_season, key_period in ((season, period), ("ALL", period), ("ALL", "ALL")):
            value = self.rates.get(key_season, {}).get(key_period)
            if value is not None:
                return value
        return None

    def rate_at(self, local: datetime) -> float | None:
        """Price in force at site-local wall-clock time `local`."""
        season = self.season_on(local.date())
        if season is None:
            return None
        minute = local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute
        return self.price(season.name, season.minute_periods[minute])


@dataclass
class CompiledTariff:
    """A validated tariff, ready for lookups by the Powerwall model."""

    buy: PriceSchedule
    sell: PriceSchedule | None

    def buy_at(self, local: datetime) -> float | None:
        """Buy price ($/kWh) at a local time."""
        return self.buy.rate_at(local)

    def sell_at(self, local: datetime) -> float:
        """Sell price ($/kWh) at a local time; 0 without a sell tariff."""
        if self.sell is None:
            return 0.0
        return self.sell.rate_at(local) or 0.0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _period_minutes(where: str, period: object) -> list[int]:
    if not isinstance(period, dict):
        raise TariffError(f"{where}: period must be an object")
    missing = [name for name in PERIOD_FIELDS if name not in period]
    if missing:
        # Tesla's app flags a schedule with an omitted toHour as "Invalid schedule" (batpred#4410).
        raise TariffError(f"{where}: missing {', '.join(missing)} (send all six fields)")
    if not all(_is_int(period[name]) for name in PERIOD_FIELDS):
        raise TariffError(f"{where}: period fields must be integers")
    from_dow, to_dow = period["fromDayOfWeek"], period["toDayOfWeek"]
    from_hour, from_minute = period["fromHour"], period["fromMinute"]
    to_hour, to_minute = period["toHour"], period["toMinute"]
    if not (0 <= from_dow <= 6 and 0 <= to_dow <= 6):
        raise TariffError(f"{where}: day of week must be 0 (Monday) to 6 (Sunday)")
    if not (0 <= from_hour <= 23 and 0 <= to_hour <= 24 and 0 <= from_minute <= 59 and 0 <= to_minute <= 59):
        raise TariffError(f"{where}: hour or minute out of range")
    if to_hour == 24 and to_minute != 0:
        raise TariffError(f"{where}: toHour 24 needs toMinute 0")
    days = [(from_dow + i) % 7 for i in range((to_dow - from_dow) % 7 + 1)]
    start, end = from_hour * 60 + from_minute, to_hour * 60 + to_minute
    if start == end or (start == 0 and end == MINUTES_PER_DAY):
        spans = [(0, MINUTES_PER_DAY)]
    elif start < end:
        spans = [(start, end)]
    else:  # wraps past midnight: evaluated per day as a time-of-day window
        spans = [(start, MINUTES_PER_DAY), (0, end)]
    return [day * MINUTES_PER_DAY + m for day in days for lo, hi in spans for m in range(lo, hi)]


def _is_placeholder(season: object) -> bool:
    # ORIG adds {"fromMonth": 0, ..., "tou_periods": {}} and Tesla reads back "Winter": {}; both are ignored.
    if not isinstance(season, dict) or season.get("tou_periods"):
        return False
    return all(not season.get(k) for k in ("fromMonth", "fromDay", "toMonth", "toDay"))


# Compiled seasons by the exact text of their definition: clients push the same time periods again and
# again with new prices, and laying out every minute of the week is most of a push's cost. Only
# successful compilations are kept (an invalid definition raises every time, with its own message).
_SEASONS_CACHE: OrderedDict[str, list[Season]] = OrderedDict()
_SEASONS_CACHE_SIZE = 16
_SEASONS_CACHE_LOCK = threading.Lock()


def _compile_seasons(where: str, seasons: object) -> list[Season]:
    key = repr(seasons)  # repr, not JSON: it tells a tuple from a list and True from 1
    with _SEASONS_CACHE_LOCK:
        cached = _SEASONS_CACHE.get(key)
        if cached is not None:
            _SEASONS_CACHE.move_to_end(key)
            return list(cached)
    compiled = _compile_seasons_uncached(where, seasons)
    with _SEASONS_CACHE_LOCK:
        _SEASONS_CACHE[key] = compiled
        while len(_SEASONS_CACHE) > _SEASONS_CACHE_SIZE:
            _SEASONS_CACHE.popitem(last=False)
    return list(compiled)


def _compile_seasons_uncached(where: str, seasons: object) -> list[Season]:
    if not isinstance(seasons, dict) or not seasons:
        raise TariffError(f"{where}.seasons: at least one season is required")
    compiled: list[Season] = []
    for name, season in seasons.items():
        if _is_placeholder(season):
            continue
        here = f"{where}.seasons.{name}"
        if not isinstance(season, dict):
            raise TariffError(f"{here}: must be an object")
        bounds = [season.get(k) for k in ("fromMonth", "fromDay", "toMonth", "toDay")]
        if not all(_is_int(v) for v in bounds):
            raise TariffError(f"{here}: fromMonth/fromDay/toMonth/toDay must be integers")
        for month, day in (bounds[:2], bounds[2:]):
            try:
                date(LEAP_YEAR, month, day)
            except ValueError as error:
                raise TariffError(f"{here}: invalid calendar date {month}/{day}") from error
        periods = season.get("tou_periods")
        if not isinstance(periods, dict) or not periods:
            raise TariffError(f"{here}: a season needs tou_periods")
        owner: list[str | None] = [None] * MINUTES_PER_WEEK
        for period_name, entry in periods.items():
            spans = entry.get("periods") if isinstance(entry, dict) else None
            if not isinstance(spans, list) or not spans:
                raise TariffError(f"{here}.tou_periods.{period_name}: needs a non-empty periods list")
            for index, span in enumerate(spans):
                for minute in _period_minutes(f"{here}.tou_periods.{period_name}[{index}]", span):
                    if owner[minute] is not None:
                        raise TariffError(
                            f"{here}: {period_name} overlaps {owner[minute]} at {_minute_text(minute)}"
                        )
                    owner[minute] = period_name
        if None in owner:
            raise TariffError(f"{here}: time periods leave a gap at {_minute_text(owner.index(None))}")
        compiled.append(Season(name, (bounds[0], bounds[1]), (bounds[2], bounds[3]), owner))  # type: ignore[arg-type]
    if not compiled:
        raise TariffError(f"{where}.seasons: at least one season with time periods is required")
    day = date(LEAP_YEAR, 1, 1)
    while day.year == LEAP_YEAR:
        covering = [s.name for s in compiled if s.covers(day)]
        if len(covering) != 1:
            problem = "no season covers" if not covering else f"seasons {', '.join(covering)} overlap on"
            raise TariffError(f"{where}.seasons: {problem} {day.month}/{day.day}")
        day = date.fromordinal(day.toordinal() + 1)
    return compiled


def _minute_text(minute: int) -> str:
    day, rest = divmod(minute, MINUTES_PER_DAY)
    return f"day {day} {rest // 60:02d}:{rest % 60:02d}"


def _compile_side(where: str, side: dict, seasons: list[Season]) -> PriceSchedule:
    charges = side.get("energy_charges")
    if not isinstance(charges, dict):
        raise TariffError(f"{where}.energy_charges: must be an object")
    periods_of = {s.name: set(s.minute_periods) for s in seasons}
    rates: dict[str, dict[str, float]] = {}
    for season_name, entry in charges.items():
        here = f"{where}.energy_charges.{season_name}"
        if not isinstance(entry, dict):
            raise TariffError(f"{here}: must be an object")
        season_rates = entry.get("rates", {})
        if not isinstance(season_rates, dict):
            raise TariffError(f"{here}.rates: must be an object")
        if not season_rates:
            continue  # {} or {"rates": {}} (placeholder seasons) carry no prices
        if season_name != "ALL" and season_name not in periods_of:
            raise TariffError(f"{here}: prices for a season without time periods")
        for period_name, rate in season_rates.items():
            if not _is_number(rate):
                raise TariffError(f"{here}.rates.{period_name}: must be a number")
            if season_name != "ALL" and period_name != "ALL" and period_name not in periods_of[season_name]:
                raise TariffError(f"{here}.rates.{period_name}: price for a period without time periods")
        rates[season_name] = {k: float(v) for k, v in season_rates.items()}
    schedule = PriceSchedule(seasons=seasons, rates=rates)
    for season in seasons:
        for period_name in set(season.minute_periods):
            if schedule.price(season.name, period_name) is None:
                raise TariffError(f"{where}: period {period_name} of season {season.name} has no price")
    return schedule


def compile_tariff(tariff: object) -> CompiledTariff:
    """Check the structure of a `tariff_content_v2` and compile it; raises TariffError."""
    if not isinstance(tariff, dict):
        raise TariffError("tariff_content_v2: must be an object")
    missing = [key for key in REQUIRED_KEYS if key not in tariff]
    if missing:
        raise TariffError(f"tariff_content_v2: missing {', '.join(missing)}")
    if tariff["currency"] not in CURRENCIES:
        raise TariffError(f"tariff_content_v2.currency: {tariff['currency']!r} is not a supported currency")
    buy_seasons = _compile_seasons("tariff_content_v2", tariff["seasons"])
    buy = _compile_side("tariff_content_v2", tariff, buy_seasons)
    sell = None
    sell_side = tariff.get("sell_tariff")
    if sell_side is not None:
        if not isinstance(sell_side, dict):
            raise TariffError("sell_tariff: must be an object")
        # A sell tariff without its own seasons is read against the buy seasons.
        sell_seasons = _compile_seasons("sell_tariff", sell_side["seasons"]) if "seasons" in sell_side else buy_seasons
        sell = _compile_side("sell_tariff", sell_side, sell_seasons)
    return CompiledTariff(buy=buy, sell=sell)


def price_problems(compiled: CompiledTariff) -> list[str]:
    """Price rules Tesla enforces by rewriting: no negative prices, buy >= sell at every moment."""
    problems = []
    for side_name, side in (("buy", compiled.buy), ("sell", compiled.sell)):
        if side is None:
            continue
        for season, rates in side.rates.items():
            for period, rate in rates.items():
                if rate < 0:
                    problems.append(f"{side_name} price {season}/{period} is negative ({rate})")
    if compiled.sell is not None:
        pairs: set[tuple[str, str]] = set()
        day = date(LEAP_YEAR, 1, 1)
        whole_year = ((1, 1), (12, 31))
        if all(len(side.seasons) == 1 and (side.seasons[0].start, side.seasons[0].end) == whole_year
               for side in (compiled.buy, compiled.sell)):
            # One whole-year season per side: the same pair on every day, no need to walk the year.
            pairs.add((compiled.buy.seasons[0].name, compiled.sell.seasons[0].name))
            day = date(LEAP_YEAR + 1, 1, 1)
        while day.year == LEAP_YEAR:
            buy_season, sell_season = compiled.buy.season_on(day), compiled.sell.season_on(day)
            if buy_season and sell_season:
                pairs.add((buy_season.name, sell_season.name))
            day = date.fromordinal(day.toordinal() + 1)
        buy_by_name = {s.name: s for s in compiled.buy.seasons}
        sell_by_name = {s.name: s for s in compiled.sell.seasons}
        for buy_name, sell_name in sorted(pairs):
            buy_minutes = buy_by_name[buy_name].minute_periods
            sell_minutes = sell_by_name[sell_name].minute_periods
            # Each (buy period, sell period) pair once, in the order of its first minute of the week.
            for key in dict.fromkeys(zip(buy_minutes, sell_minutes)):
                buy_rate = compiled.buy.price(buy_name, key[0]) or 0.0
                sell_rate = compiled.sell.price(sell_name, key[1]) or 0.0
                if sell_rate > buy_rate:
                    minute = next(
                        m for m in range(MINUTES_PER_WEEK) if (buy_minutes[m], sell_minutes[m]) == key
                    )
                    problems.append(
                        f"sell {sell_rate} exceeds buy {buy_rate} at {_minute_text(minute)} ({key[0]})"
                    )
    return problems


def normalise(tariff: dict, compiled: CompiledTariff) -> dict:
    """What Tesla stores for a tariff with price problems: negatives -> 0, buy raised to sell.

    Buy is raised per period name where the sell side uses the same season and period names."""
    fixed = copy.deepcopy(tariff)
    sides = [fixed.get("energy_charges", {}), (fixed.get("sell_tariff") or {}).get("energy_charges", {})]
    for charges in sides:
        for entry in charges.values():
            rates = entry.get("rates", {}) if isinstance(entry, dict) else {}
            for period, rate in rates.items():
                if _is_number(rate) and rate < 0:
                    rates[period] = 0
    sell_charges = sides[1]
    for season, entry in sides[0].items():
        for period, rate in entry.get("rates", {}).items():
            sell_rate = sell_charges.get(season, {}).get("rates", {}).get(period)
            if _is_number(sell_rate) and sell_rate > rate:
                entry["rates"][period] = sell_rate
    return fixed
