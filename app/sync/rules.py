"""Pure decisions of the sync: when to push, what to push when data is stale, when to stop exports.

No Flask, no database, no clock: every function takes what it decides on as arguments, so the rules
are tested table-driven."""
from __future__ import annotations

import hashlib
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app import json_codec
from app.tariff import PERIOD_NAMES, TariffPolicy, tariff_from_rates, tariff_rates


def tariff_hash(tariff: Mapping[str, Any]) -> str:
    """A stable fingerprint of a tariff document: SHA-256 of its JSON with every object's keys sorted.

    Written by orjson (Python's json module took 0.5 ms of a pushing sync's CPU for it). For the tariffs the
    app builds (ASCII names, rates rounded to 4 decimals) the bytes are the ones `json.dumps(sort_keys=True,
    separators=(",", ":"))` wrote before, so a tariff hashes as it did in earlier versions. (The two differ in
    how they write a float under 1e-4 and non-ASCII text; nothing compares a stored hash with a new one.)"""
    return hashlib.sha256(json_codec.dumps_bytes(tariff, sort_keys=True)).hexdigest()


@dataclass(frozen=True)
class PushDecision:
    """Whether to push, and why, in words for the sync history."""

    push: bool
    reason: str


def _hhmm(period: str) -> str:
    return period.removeprefix("PERIOD_").replace("_", ":")


def decide_push(
    new_tariff: Mapping[str, Any],
    current_period: str,
    last_tariff: Mapping[str, Any] | None,
    last_push_at: datetime | None,
    last_kind: str | None,
    now: datetime,
    *,
    threshold_cents: float,
    refresh_age: timedelta,
) -> PushDecision:
    """Push when there is no previous tariff, the last one was a fallback, the current slot changed at
    all, any slot changed by at least `threshold_cents`, or the last push is older than `refresh_age`."""
    if last_tariff is None or last_push_at is None:
        return PushDecision(True, "First tariff for this Powerwall.")
    if last_kind == "fallback":
        return PushDecision(True, "Fresh prices are back; replacing the safe fallback tariff.")
    new_buy, new_sell = tariff_rates(new_tariff)
    old_buy, old_sell = tariff_rates(last_tariff)
    if (new_buy.get(current_period), new_sell.get(current_period)) != (
        old_buy.get(current_period),
        old_sell.get(current_period),
    ):
        return PushDecision(True, f"The price of the current half hour ({_hhmm(current_period)}) changed.")
    changed = []
    for period in PERIOD_NAMES:
        delta = max(
            abs(new_buy.get(period, 0.0) - old_buy.get(period, 0.0)),
            abs(new_sell.get(period, 0.0) - old_sell.get(period, 0.0)),
        )
        # Rates are $/kWh; the threshold is c/kWh. A tiny epsilon absorbs float noise at the boundary.
        if delta * 100 >= threshold_cents - 1e-9:
            changed.append((delta, period))
    if changed:
        delta, period = max(changed)
        return PushDecision(
            True,
            f"{len(changed)} half hour(s) changed by {threshold_cents:g} c/kWh or more "
            f"(most at {_hhmm(period)}: {delta * 100:.1f} c/kWh).",
        )
    age = now - last_push_at
    if age >= refresh_age:
        return PushDecision(True, f"Refresh: the last push was {int(age.total_seconds() // 60)} minutes ago.")
    return PushDecision(False, "No price changed enough to be worth a push.")


def tariffs_differ(ours: Mapping[str, Any], read_back: Mapping[str, Any] | None) -> bool:
    """Whether the tariff read back from Tesla holds other rates than ours (someone edited it).

    Only the per-period rates are compared: Tesla normalises the rest of the document on read-back."""
    if read_back is None:
        return True
    ours_buy, ours_sell = tariff_rates(ours)
    theirs_buy, theirs_sell = tariff_rates(read_back)

    def same(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
        return a.keys() == b.keys() and all(abs(a[k] - b[k]) < 0.00005 for k in a)

    return not (same(ours_buy, theirs_buy) and same(ours_sell, theirs_sell))


@dataclass(frozen=True)
class LostAnswerCheck:
    """What reading the Powerwall back after a push whose answer was lost showed, and what follows.

    `push`: True or False when the read-back decides it; None when the usual rule (decide_push) decides,
    against the lost push if it `arrived`, else against the last accepted one."""

    arrived: bool
    push: bool | None
    reason: str
    changed_outside: bool = False


def after_lost_answer(
    wanted: Mapping[str, Any],
    lost: Mapping[str, Any],
    last_accepted: Mapping[str, Any] | None,
    read_back: Mapping[str, Any] | None,
) -> LostAnswerCheck:
    """Decide from one read-back whether a push whose answer was lost arrived, and whether `wanted` must
    still be sent: never when the Powerwall already holds it (a push is billed), always when it holds
    neither the lost push nor the last accepted one (then the usual rule would compare with the wrong tariff)."""
    if not tariffs_differ(lost, read_back):
        return LostAnswerCheck(True, None, "The previous push's answer was lost; reading the Powerwall back shows it arrived.")
    if not tariffs_differ(wanted, read_back):
        return LostAnswerCheck(
            False, False,
            "The previous push's answer was lost and reading the Powerwall back shows it did not arrive, but the "
            "Powerwall already holds the tariff wanted now; nothing was sent.",
        )
    if last_accepted is not None and tariffs_differ(last_accepted, read_back):
        return LostAnswerCheck(
            False, True,
            "The previous push's answer was lost; reading the Powerwall back shows it did not arrive and the Powerwall "
            "holds a tariff set outside this app, so the synced one is sent.",
            changed_outside=True,
        )
    return LostAnswerCheck(False, None, "The previous push's answer was lost; reading the Powerwall back shows it did not arrive.")


def fallback_tariff(last_good: Mapping[str, Any], policy: TariffPolicy) -> dict[str, Any] | None:
    """A flat tariff at the median of the last good tariff's prices: no slot invites grid charging or
    forced export while the app is steering blind. None when there is nothing to take a median of."""
    buy, sell = tariff_rates(last_good)
    if not buy:
        return None
    flat_buy = round(statistics.median(buy.values()), 4)
    flat_sell = round(min(statistics.median(sell.values()) if sell else 0.0, flat_buy), 4)
    return tariff_from_rates(
        policy, {p: flat_buy for p in PERIOD_NAMES}, {p: max(flat_sell, 0.0) for p in PERIOD_NAMES}
    )


def is_stale(last_success_at: datetime | None, now: datetime, limit: timedelta) -> bool:
    """Whether the Powerwall has been steering on old prices for longer than `limit` (a user who never
    had a fresh tariff pushed is not: there is nothing old to replace)."""
    return last_success_at is not None and now - last_success_at > limit


# After Tesla refused the saved credentials, the sync checks once an hour whether they work again: a
# passing outage at Tesla or Teslemetry must not stop the sync until someone notices.
TESLA_AUTH_RECHECK = timedelta(hours=1)


def tesla_wait(blocked_reason: str | None, retry_after: datetime | None, now: datetime) -> str | None:
    """Why the sync must not call Tesla at `now`, in plain words; None when it may.

    `retry_after` is when Tesla may be called again: after a 429, what Tesla asked for; after refused
    credentials (`blocked_reason`), the next hourly check."""
    if retry_after is None or retry_after <= now:
        return None
    when = retry_after.strftime("%H:%M UTC")
    if blocked_reason:
        return f"Tesla needs attention: {blocked_reason} The app checks again after {when}."
    return f"Tesla asked us to slow down; the next push is after {retry_after.strftime('%H:%M:%S UTC')}."


@dataclass(frozen=True)
class ExportAction:
    """What export protection should do this tick: "activate", "restore" or "none", and why."""

    action: str
    reason: str


def decide_export_protection(
    *,
    enabled: bool,
    active: bool,
    current_costs_money: bool,
    next_costs_money: bool,
    user_rule: str | None,
    protect_rule: str,
    active_since: datetime | None,
    now: datetime,
    min_hold: timedelta,
) -> ExportAction:
    """Stop exports while exporting costs money; restore the user's rule when it stops.

    Hysteresis: protection switches on as soon as the current half hour costs money to export, and
    off only when neither the current nor the next half hour does and it has held for `min_hold`."""
    if active:
        if not enabled:
            return ExportAction("restore", "Negative feed-in protection was turned off.")
        if current_costs_money or next_costs_money:
            return ExportAction("none", "Exporting still costs money.")
        if active_since is not None and now - active_since < min_hold:
            return ExportAction("none", "Waiting a little before allowing exports again.")
        return ExportAction("restore", "Exporting earns money again; your export setting is restored.")
    if enabled and current_costs_money:
        if user_rule in (None, "never") or user_rule == protect_rule:
            return ExportAction("none", "Exports are already limited by your own setting.")
        return ExportAction("activate", "Exporting costs money now; exports are stopped until it earns again.")
    return ExportAction("none", "")
