"""Server-rendered SVG price charts for the dashboard: Amber's next 24 hours over the tariff on the Powerwall,
and the last 24 hours of settled prices.

Pure: no Flask, no I/O, no clock (`now` is a parameter), no JavaScript. Each chart is a `Markup` fragment,
`<div class="price-chart">` holding an HTML legend and one `<svg>` that scales with its container; colours,
dash patterns and font sizes live in `app/static/charts.css` (classes only, no inline styles, so a strict
Content-Security-Policy holds). Tooltips are SVG `<title>`s. Prices come in $/kWh and are drawn in c/kWh.
"""
from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from app.prices import LEVEL_WORDS, price_level

__all__ = ["PricePoint", "TariffSlot", "forecast_chart", "history_chart"]

UTC = timezone.utc

# Values beyond the cap are drawn at the edge as arrows labelled with their real value, so one $15 spike
# does not squash 20c prices into a flat line. The cap is the larger of $2 and 1.5 x the duration-weighted
# 90th percentile of |price|: a spike shorter than ~10% of the window is clipped, a long expensive
# evening is not (a plain 95th percentile would sit inside a two-hour spike and clip nothing).
CAP_FLOOR_C = 200.0
CAP_FACTOR = 1.5
CAP_PERCENTILE = 0.9
MIN_SPAN_C = 10.0  # all prices equal (or zero) still get a readable axis
CAP_ROUND_C = 50.0
AXIS_PAD = 0.05
MAX_Y_STEPS = 4
Y_STEPS = (1.0, 2.0, 2.5, 5.0)
TICK_HOURS = 3
MAJOR_TICK_HOURS = 6  # phones show only these labels (charts.css hides the others)
_GRID = timedelta(minutes=15)  # every zone's offset is a multiple of 15 minutes: local hours fall on it

# Layout in user units; y labels sit in the right margin, x labels and "Now" below the plot,
# spike markers in the strip above it. charts.css enlarges text on phones; the margins leave room.
M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 8, 46, 18, 34
MIN_WIDTH, MIN_HEIGHT = 240, 140
NOW_LABEL_CLEARANCE = 40  # tick labels closer than this to "Now" are dropped (phones: see tick-near-now)
NOW_LABEL_CLEARANCE_PHONE = 120
CLIP_LABEL_SPACING = 70
SETTLE_LAG = timedelta(minutes=5)  # one sync period

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # not strftime("%a"): that follows the locale
_KIND_RANK = {"actual": 0, "current": 1, "forecast": 2}
_ID_TOKEN = "@@chart-id@@"


@dataclass(frozen=True)
class PricePoint:
    """One Amber interval in $/kWh; `sell` is what the user earns per exported kWh (negative: export costs)."""

    start: datetime  # aware UTC
    end: datetime  # aware UTC
    buy: float | None
    sell: float | None
    kind: str  # "actual" | "current" | "forecast"
    spike: bool = False  # Amber spikeStatus "spike" (or "potential")
    estimate: bool = False  # price not confirmed yet
    descriptor: str | None = None  # Amber's level for the buy price: extremelyLow ... spike


@dataclass(frozen=True)
class TariffSlot:
    """One of the 48 half-hour periods of the tariff on the Powerwall, laid out on the real timeline."""

    start: datetime  # aware UTC
    end: datetime
    buy: float  # $/kWh
    sell: float


# -- public API ---------------------------------------------------------------------------------------------


def forecast_chart(
    points: Sequence[PricePoint],
    tariff: Sequence[TariffSlot],
    now: datetime,
    tz: ZoneInfo,
    *,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """Amber buy/sell for 24 hours from the current half hour, over the Powerwall tariff, with "now" marked."""
    _check_size(width, height)
    _aware(now, "now")
    _check_points(points)
    for i, slot in enumerate(tariff):
        _aware(slot.start, f"tariff[{i}].start")
        _aware(slot.end, f"tariff[{i}].end")
    local = now.astimezone(tz)
    x0 = (now - timedelta(minutes=local.minute % 30, seconds=local.second, microseconds=local.microsecond))
    x0 = x0.astimezone(UTC)
    x1 = x0 + timedelta(hours=24)
    frame = _Frame(x0, x1, tz, width, height)

    ivs = _clean(points, x0, x1)
    slots = sorted(
        (_Slot(s, max(s.start, x0), min(s.end, x1)) for s in tariff),
        key=lambda sl: (sl.slot.start, sl.slot.end),
    )
    shown = [sl for sl in slots if sl.end > sl.start and _finite(sl.slot.buy) and _finite(sl.slot.sell)]
    samples = [(v, iv.seconds) for iv in ivs for v in (iv.buy, iv.sell) if v is not None]
    samples += [(sl.slot.buy * 100, sl.seconds) for sl in shown] + [(sl.slot.sell * 100, sl.seconds) for sl in shown]
    scale = _YScale.fit(samples, frame)

    svg: list[str] = []
    body = svg.append
    _background(body, frame, scale)
    # Amber hit areas first, tariff bands over them: the band shows the tariff's own tooltip, everything
    # else on the timeline shows Amber's prices together with the tariff at that moment.
    starts = [sl.slot.start for sl in slots]
    for iv in ivs:
        slot = _slot_at(slots, starts, iv.start + (iv.end - iv.start) / 2)
        title = _interval_title(iv, frame)
        if slot is not None:
            title += f" · Powerwall buy {_c1(slot.buy * 100)} sell {_c1(slot.sell * 100)}"
        _interval_rect(body, iv, frame, title)
    for sl in slots:
        _tariff_slot(body, sl, frame, scale)
    levels = _level_strip(body, ivs, frame)
    _zero_line(body, frame, scale)
    body(_step_path([(sl.start, sl.end, sl.slot.buy * 100) for sl in shown], frame, scale, "line line-tariff-buy"))
    body(_step_path([(sl.start, sl.end, sl.slot.sell * 100) for sl in shown], frame, scale, "line line-tariff-sell"))
    body(_step_path([(iv.start, iv.end, iv.sell) for iv in ivs], frame, scale, "line line-sell"))
    body(_step_path([(iv.start, iv.end, iv.buy) for iv in ivs], frame, scale, "line line-buy"))
    spikes = _spike_markers(body, ivs, frame, tz)
    clipped = _clip_markers(body, ivs, frame, scale, tz)
    now_x = frame.x(now)
    _x_axis(body, frame, now_x)
    body(
        f'<g class="now"><title>Now {_hhmm(now, tz)}</title>'
        f'<line class="now-line" x1="{_n(now_x)}" y1="{_n(frame.top - 4)}" x2="{_n(now_x)}" y2="{_n(frame.bottom + 4)}"'
        f' stroke="currentColor"/>'
        f'<text class="now-label" x="{_n(now_x - 3)}" y="{_n(frame.bottom + 5)}" dy="0.9em">Now</text></g>'
    )
    if not ivs and not shown:
        _message(body, frame, "No forecast available yet")
    elif not ivs:
        _message(body, frame, "No Amber forecast available")

    title = "Amber prices for the next 24 hours and the tariff on the Powerwall"
    desc = [f"Times are {_zone_name(tz)} local time, {_hhmm(x0, tz)} today to {_hhmm(x1, tz)} tomorrow."]
    desc += _series_sentences(ivs, tz, tariff=shown)
    desc += spikes + clipped
    desc.append(f"Now is {_hhmm(now, tz)}.")
    legend = [("buy", "Amber buy"), ("sell", "Amber sell"), ("tariff-buy", "Powerwall buy"),
              ("tariff-sell", "Powerwall sell")]
    if spikes:
        legend.append(("spike", "Spike"))
    if scale.lo < 0:
        legend.append(("negative", "Below zero"))
    if levels:
        legend.append(("levels", "Band: Amber's level, green (cheap) to red (spike)"))
    return _assemble("forecast", frame, title, " ".join(desc), legend, svg)


def history_chart(
    points: Sequence[PricePoint],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    *,
    width: int = 720,
    height: int = 220,
) -> Markup:
    """Settled Amber buy/sell between `start` and `end`; missing intervals break the lines and are hatched."""
    _check_size(width, height)
    _aware(start, "start")
    _aware(end, "end")
    if end <= start:
        raise ValueError("history_chart: end must be after start")
    _check_points(points)
    x0, x1 = start.astimezone(UTC), end.astimezone(UTC)
    frame = _Frame(x0, x1, tz, width, height)
    # Forecasts are not history; an interval with neither price is missing data.
    ivs = [iv for iv in _clean(points, x0, x1, kinds=("actual", "current"))
           if iv.buy is not None or iv.sell is not None]
    samples = [(v, iv.seconds) for iv in ivs for v in (iv.buy, iv.sell) if v is not None]
    scale = _YScale.fit(samples, frame)
    gaps = _gaps(ivs, x0, x1) if ivs else []

    svg: list[str] = []
    body = svg.append
    _background(body, frame, scale)
    for a, b in gaps:
        xa, xb = frame.x(a), frame.x(b)
        if xb - xa < 3:  # a missing 5-minute interval stays visible
            xa, xb = (xa + xb) / 2 - 1.5, (xa + xb) / 2 + 1.5
        body(
            f'<rect class="gap" x="{_n(xa)}" y="{_n(frame.top)}" width="{_n(xb - xa)}" height="{_n(frame.plot_h)}"'
            f' fill="url(#{_ID_TOKEN}-hatch)"><title>no data {_span(a, b, tz)}</title></rect>'
        )
    for iv in ivs:
        _interval_rect(body, iv, frame, _interval_title(iv, frame))
    levels = _level_strip(body, ivs, frame)
    _zero_line(body, frame, scale)
    body(_step_path([(iv.start, iv.end, iv.sell) for iv in ivs], frame, scale, "line line-sell"))
    body(_step_path([(iv.start, iv.end, iv.buy) for iv in ivs], frame, scale, "line line-buy"))
    spikes = _spike_markers(body, ivs, frame, tz)
    clipped = _clip_markers(body, ivs, frame, scale, tz)
    _x_axis(body, frame, None)
    if not points:
        _message(body, frame, "No price history yet")
    elif not ivs:
        _message(body, frame, "No prices recorded in this period")

    title = "Amber prices over the last 24 hours"
    desc = [f"Settled prices, {_zone_name(tz)} local time, {_hhmm(x0, tz)} {_day(x0, tz)} to "
            f"{_hhmm(x1, tz)} {_day(x1, tz)}."]
    if not points:
        desc.append("No price history yet.")
    elif not ivs:
        desc.append("No prices were recorded in this period.")
    desc += _series_sentences(ivs, tz, tariff=None)
    desc += spikes + clipped
    if gaps:
        listed = ", ".join(_span(a, b, tz) for a, b in gaps[:3])
        more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
        desc.append(f"No data {listed}{more}.")
    legend = [("buy", "Amber buy"), ("sell", "Amber sell")]
    if gaps:
        legend.append(("gap", "No data"))
    if spikes:
        legend.append(("spike", "Spike"))
    if scale.lo < 0:
        legend.append(("negative", "Below zero"))
    if levels:
        legend.append(("levels", "Band: Amber's level, green (cheap) to red (spike)"))
    defs = (
        f'<defs><pattern id="{_ID_TOKEN}-hatch" width="6" height="6" patternUnits="userSpaceOnUse"'
        f' patternTransform="rotate(45)"><rect class="gap-bg" width="6" height="6" fill="none"/>'
        f'<line class="gap-hatch" x1="0" y1="0" x2="0" y2="6" stroke="currentColor"/></pattern></defs>'
    )
    return _assemble("history", frame, title, " ".join(desc), legend, [defs, *svg])


# -- validation and cleaning ---------------------------------------------------------------------------------


def _aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got a naive datetime)")


def _check_points(points: Sequence[PricePoint]) -> None:
    for i, p in enumerate(points):
        _aware(p.start, f"points[{i}].start")
        _aware(p.end, f"points[{i}].end")


def _check_size(width: int, height: int) -> None:
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise ValueError(f"chart size must be at least {MIN_WIDTH}x{MIN_HEIGHT}")


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _cents(value: float | None) -> float | None:
    return value * 100 if _finite(value) else None  # type: ignore[operator]


@dataclass(frozen=True)
class _Iv:
    """A cleaned interval, clipped to the window, prices in c/kWh."""

    start: datetime
    end: datetime
    buy: float | None
    sell: float | None
    kind_html: str  # escaped once here: the only free text that reaches the per-interval markup
    spike: bool
    estimate: bool
    level: str | None = None  # one of app.prices.LEVELS (anything else from Amber is dropped)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _clean(points: Iterable[PricePoint], a: datetime, b: datetime, kinds: tuple[str, ...] | None = None) -> list[_Iv]:
    """Points inside [a, b], clipped to it, without overlaps (settled beats forecast, finer beats coarser)."""
    rows = [p for p in points if p.end > p.start and p.end > a and p.start < b
            and (kinds is None or _kind(p) in kinds)]
    rows.sort(key=lambda p: (p.start, p.end))
    overlapping = any(later.start < earlier.end for earlier, later in zip(rows, rows[1:]))
    if overlapping:
        rows.sort(key=lambda p: (_KIND_RANK.get(_kind(p), 3), p.end - p.start, p.start, p.end))
    taken: list[tuple[datetime, datetime]] = []  # sorted, disjoint
    out: list[_Iv] = []
    kinds_html: dict[str, str] = {}
    for p in rows:
        s, e = max(p.start, a).astimezone(UTC), min(p.end, b).astimezone(UTC)
        kind = _kind(p)
        kind_html = kinds_html.get(kind) or kinds_html.setdefault(kind, str(escape(kind)))
        if not overlapping:
            out.append(_Iv(s, e, _cents(p.buy), _cents(p.sell), kind_html, p.spike, p.estimate, _level(p)))
            continue
        for piece_s, piece_e in _uncovered(taken, s, e):
            out.append(_Iv(piece_s, piece_e, _cents(p.buy), _cents(p.sell), kind_html, p.spike, p.estimate, _level(p)))
            bisect.insort(taken, (piece_s, piece_e))
    out.sort(key=lambda iv: iv.start)
    return out


def _level(p: PricePoint) -> str | None:
    return price_level(p.descriptor)


def _level_strip(body: Callable[[str], None], ivs: list[_Iv], frame: _Frame) -> bool:
    """A thin band under the plot coloured by Amber's level of each interval, its word on hover; True if drawn."""
    drawn = False
    for iv in ivs:
        if iv.level is None:
            continue
        body(
            f'<rect class="level level-{iv.level}" x="{frame.xn(iv.start)}" y="{_n(frame.bottom - 5)}"'
            f' width="{_n(frame.x(iv.end) - frame.x(iv.start))}" height="5">'
            f'<title>{frame.span(iv.start, iv.end)} Amber says {LEVEL_WORDS[iv.level]}</title></rect>'
        )
        drawn = True
    return drawn


def _kind(p: PricePoint) -> str:
    """The kind as plain text, also when a caller passes a str-valued enum (e.g. `IntervalKind`)."""
    return str(getattr(p.kind, "value", p.kind))


def _uncovered(taken: list[tuple[datetime, datetime]], s: datetime, e: datetime) -> list[tuple[datetime, datetime]]:
    pieces = []
    i = max(bisect.bisect_left(taken, (s, s)) - 1, 0)
    cursor = s
    while i < len(taken) and taken[i][0] < e:
        ts, te = taken[i]
        if te > cursor:
            if ts > cursor:
                pieces.append((cursor, ts))
            cursor = max(cursor, te)
        i += 1
    if cursor < e:
        pieces.append((cursor, e))
    return pieces


def _gaps(ivs: list[_Iv], a: datetime, b: datetime) -> list[tuple[datetime, datetime]]:
    """Stretches of [a, b] without data. The trailing stretch counts only once it is longer than an interval
    plus one sync: the interval in progress has not settled yet and settled prices arrive a few minutes late."""
    gaps = []
    cursor = a
    for iv in ivs:
        if iv.start - cursor >= timedelta(minutes=1):
            gaps.append((cursor, iv.start))
        cursor = max(cursor, iv.end)
    longest = max((iv.end - iv.start for iv in ivs), default=timedelta(minutes=5))
    if b - cursor > max(longest, SETTLE_LAG) + SETTLE_LAG:
        gaps.append((cursor, b))
    return gaps


@dataclass(frozen=True)
class _Slot:
    """A tariff slot and its part inside the window."""

    slot: TariffSlot
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)


def _slot_at(slots: list[_Slot], starts: list[datetime], t: datetime) -> TariffSlot | None:
    i = bisect.bisect_right(starts, t) - 1
    if i >= 0 and slots[i].slot.start <= t < slots[i].slot.end:
        return slots[i].slot
    return None


# -- scales ----------------------------------------------------------------------------------------------------


class _Frame:
    """The time window and the plot rectangle."""

    __slots__ = ("x0", "x1", "tz", "width", "height", "left", "right", "top", "bottom", "plot_w", "plot_h",
                 "full_height", "_t0", "_k", "_labels", "_xs")

    def __init__(self, x0: datetime, x1: datetime, tz: tzinfo, width: int, height: int) -> None:
        self.x0, self.x1, self.tz, self.width, self.height = x0, x1, tz, width, height
        self.left, self.right = float(M_LEFT), float(width - M_RIGHT)
        self.top, self.bottom = float(M_TOP), float(height - M_BOTTOM)
        self.plot_w, self.plot_h = self.right - self.left, self.bottom - self.top
        self.full_height = f' y="{_n(self.top)}" height="{_n(self.plot_h)}"'
        self._t0 = x0.timestamp()
        self._k = self.plot_w / (x1.timestamp() - self._t0)
        self._labels: dict[datetime, str] = {}
        self._xs: dict[datetime, str] = {}

    def x(self, t: datetime) -> float:
        """The x of an instant, clamped to the plot."""
        return min(max(self.left + (t.timestamp() - self._t0) * self._k, self.left), self.right)

    def xn(self, t: datetime) -> str:
        """`x(t)` formatted for the SVG (cached: every boundary is used by several elements)."""
        text = self._xs.get(t)
        if text is None:
            text = self._xs[t] = _n(self.x(t))
        return text

    def hhmm(self, t: datetime) -> str:
        """Local wall-clock time of an instant, HH:MM."""
        label = self._labels.get(t)
        if label is None:
            local = t.astimezone(self.tz)
            label = self._labels[t] = f"{local.hour:02d}:{local.minute:02d}"
        return label

    def span(self, a: datetime, b: datetime) -> str:
        return f"{self.hhmm(a)}–{self.hhmm(b)}"


@dataclass(frozen=True)
class _YScale:
    """The price axis in c/kWh: [lo, hi] always includes 0; values outside are clipped to the edge."""

    lo: float
    hi: float
    step: float
    top: float
    bottom: float
    has_data: bool

    @classmethod
    def fit(cls, samples: list[tuple[float, float]], frame: _Frame) -> _YScale:
        """An axis over the samples (value, weight) with round ticks, capped against extreme spikes."""
        lo = hi = 0.0
        clipped_lo = clipped_hi = False
        if samples:
            q = _weighted_quantile([(abs(v), w) for v, w in samples], CAP_PERCENTILE)
            cap = math.ceil(max(CAP_FLOOR_C, CAP_FACTOR * q) / CAP_ROUND_C) * CAP_ROUND_C
            vmax, vmin = max(v for v, _ in samples), min(v for v, _ in samples)
            hi, clipped_hi = min(max(vmax, 0.0), cap), vmax > cap
            lo, clipped_lo = max(min(vmin, 0.0), -cap), vmin < -cap
        if hi - lo < MIN_SPAN_C:
            hi = lo + MIN_SPAN_C
        # Headroom so a line does not run along the frame; none where values are clipped (the edge means
        # "beyond") or at an all-positive chart's bottom (0 is the floor).
        pad = AXIS_PAD * (hi - lo)
        top_v = hi if clipped_hi else hi + pad
        bottom_v = lo if clipped_lo or lo == 0 else lo - pad
        return cls(bottom_v, top_v, _nice_step(bottom_v, top_v), frame.top, frame.bottom, bool(samples))

    def clip(self, v: float) -> float:
        return min(max(v, self.lo), self.hi)

    def y(self, v: float) -> float:
        return self.bottom - (self.clip(v) - self.lo) / (self.hi - self.lo) * (self.bottom - self.top)

    def ticks(self) -> list[float]:
        """Round values inside the axis (only 0 when there is no data)."""
        if not self.has_data:
            return [0.0]
        first, last = math.ceil(self.lo / self.step - 1e-9), math.floor(self.hi / self.step + 1e-9)
        return [round(i * self.step, 6) + 0.0 for i in range(first, last + 1)]


def _weighted_quantile(samples: list[tuple[float, float]], q: float) -> float:
    ordered = sorted(samples)
    total = sum(w for _, w in ordered)
    if total <= 0:
        return ordered[int(q * (len(ordered) - 1))][0]
    acc = 0.0
    for v, w in ordered:
        acc += w
        if acc >= q * total:
            return v
    return ordered[-1][0]


def _nice_step(lo: float, hi: float) -> float:
    """The smallest 1/2/2.5/5 x 10^n step that puts at most MAX_Y_STEPS gridline intervals in [lo, hi]."""
    magnitude = 10 ** math.floor(math.log10((hi - lo) / MAX_Y_STEPS))
    for mult in (*Y_STEPS, 10.0, 20.0, 25.0, 50.0):
        step = mult * magnitude
        if math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) <= MAX_Y_STEPS:
            return step
    return 100.0 * magnitude  # pragma: no cover - 10 x magnitude always fits


# -- drawing ---------------------------------------------------------------------------------------------------


def _n(v: float) -> str:
    """A coordinate rounded to 0.1, without a trailing .0 or a negative zero."""
    s = f"{v:.1f}"
    if s.endswith(".0"):
        s = s[:-2]
    return "0" if s == "-0" else s


def _background(body: Callable[[str], None], frame: _Frame, scale: _YScale) -> None:
    """Negative-price shading, horizontal grid with c/kWh labels, midnight lines with the day's name."""
    left, right = _n(frame.left), _n(frame.right)
    if scale.lo < 0:
        y0 = scale.y(0)
        body(f'<rect class="negative-zone" x="{left}" y="{_n(y0)}" width="{_n(frame.plot_w)}"'
             f' height="{_n(frame.bottom - y0)}" fill="none"><title>Below zero</title></rect>')
    parts = ['<g class="y-axis">']
    for t in scale.ticks():
        y = _n(scale.y(t))
        if t != 0:
            parts.append(f'<line class="grid" x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="currentColor"/>')
        parts.append(f'<text class="y-label{" y-label-zero" if t == 0 else ""}" x="{_n(frame.width - 3)}" y="{y}"'
                     f' dy="0.35em" text-anchor="end">{_tick_c(t)}</text>')
    parts.append("</g>")
    body("".join(parts))
    for t, local in _time_ticks(frame):
        if local.hour == 0:
            x = _n(frame.x(t))
            body(f'<line class="grid grid-midnight" x1="{x}" y1="{_n(frame.top)}" x2="{x}" y2="{_n(frame.bottom)}"'
                 f' stroke="currentColor"/><text class="day-label" x="{_n(frame.x(t) + 3)}" y="{_n(frame.top + 2)}"'
                 f' dy="0.9em">{_DAYS[local.weekday()]}</text>')


def _zero_line(body: Callable[[str], None], frame: _Frame, scale: _YScale) -> None:
    """The 0c line, above the hit areas and tariff bands, under the price lines."""
    y = _n(scale.y(0))
    body(f'<line class="zero-line" x1="{_n(frame.left)}" y1="{y}" x2="{_n(frame.right)}" y2="{y}"'
         f' stroke="currentColor"/>')


def _x_axis(body: Callable[[str], None], frame: _Frame, now_x: float | None) -> None:
    """The time axis: labels every 3 h of local wall time, none where they would collide with "Now"."""
    parts = ['<g class="x-axis">']
    for t, local in _time_ticks(frame):
        x = frame.x(t)
        classes = ["tick-label"]
        if local.hour % MAJOR_TICK_HOURS:
            classes.append("tick-minor")
        if now_x is not None and abs(x - now_x) < NOW_LABEL_CLEARANCE:
            continue
        if now_x is not None and abs(x - now_x) < NOW_LABEL_CLEARANCE_PHONE:
            classes.append("tick-near-now")
        anchor = "middle"
        if x - frame.left < 20:
            anchor = "start"
        elif frame.right - x < 20:
            anchor = "end"
        parts.append(f'<line class="tick" x1="{_n(x)}" y1="{_n(frame.bottom)}" x2="{_n(x)}" y2="{_n(frame.bottom + 4)}"'
                     f' stroke="currentColor"/>')
        parts.append(f'<text class="{" ".join(classes)}" x="{_n(x)}" y="{_n(frame.bottom + 5)}" dy="0.9em"'
                     f' text-anchor="{anchor}">{local:%H:%M}</text>')
    parts.append("</g>")
    body("".join(parts))


def _time_ticks(frame: _Frame) -> list[tuple[datetime, datetime]]:
    """Real instants in the window where the local clock shows a multiple of 3 hours (DST-correct)."""
    seconds = frame.x0.timestamp()
    t = frame.x0 - timedelta(seconds=seconds % _GRID.total_seconds())
    out = []
    while t <= frame.x1:
        if t >= frame.x0:
            local = t.astimezone(frame.tz)
            if local.minute == 0 and local.hour % TICK_HOURS == 0:
                out.append((t, local))
        t += _GRID
    return out


def _interval_title(iv: _Iv, frame: _Frame) -> str:
    """"14:00–14:30 buy 31.2c sell 8.1c (forecast)", with spike and estimate flags; already markup-safe."""
    buy = _c1(iv.buy) if iv.buy is not None else "n/a"
    sell = _c1(iv.sell) if iv.sell is not None else "n/a"
    flags = [iv.kind_html] + (["estimate"] if iv.estimate else []) + (["spike"] if iv.spike else [])
    level = f", Amber says {LEVEL_WORDS[iv.level]}" if iv.level else ""
    return f"{frame.span(iv.start, iv.end)} buy {buy} sell {sell} ({', '.join(flags)}){level}"


def _interval_rect(body: Callable[[str], None], iv: _Iv, frame: _Frame, title: str) -> None:
    classes = "price-interval"
    if iv.spike:
        classes += " spike"
    if (iv.buy is not None and iv.buy < 0) or (iv.sell is not None and iv.sell < 0):
        classes += " negative"
    if iv.estimate:
        classes += " estimate"
    body(
        f'<rect class="{classes}" data-kind="{iv.kind_html}"'
        f' x="{frame.xn(iv.start)}" width="{_n(frame.x(iv.end) - frame.x(iv.start))}"{frame.full_height}'
        f' fill="transparent"><title>{title}</title></rect>'
    )


def _tariff_slot(body: Callable[[str], None], sl: _Slot, frame: _Frame, scale: _YScale) -> None:
    """Exactly one element per slot, even outside the window (then without a band), so slots can be counted."""
    s = sl.slot
    title = f"{frame.span(s.start, s.end)} Powerwall tariff buy {_c1(s.buy * 100)} sell {_c1(s.sell * 100)}"
    band = ""
    if sl.end > sl.start and _finite(s.buy) and _finite(s.sell):
        ya, yb = scale.y(s.buy * 100), scale.y(s.sell * 100)
        top, h = min(ya, yb), max(abs(ya - yb), 1.0)
        xa, xb = frame.x(sl.start), frame.x(sl.end)
        band = (f'<rect class="tariff-band" x="{_n(xa)}" y="{_n(top)}" width="{_n(xb - xa)}" height="{_n(h)}"'
                f' fill="none"/>')
    body(f'<g class="tariff-slot" data-start="{_iso(s.start)}"><title>{escape(title)}</title>{band}</g>')


def _step_path(steps: list[tuple[datetime, datetime, float | None]], frame: _Frame, scale: _YScale, cls: str) -> str:
    """A step line through (start, end, value) intervals; a missing value or a gap in time breaks it."""
    d: list[str] = []
    prev_end: datetime | None = None
    prev_y = ""
    for s, e, v in steps:
        if v is None:
            prev_end = None
            continue
        y = _n(scale.y(v))
        if prev_end is not None and s == prev_end:
            if y != prev_y:
                d.append(f"V{y}")
            elif d and d[-1][0] == "H":
                d.pop()
        else:
            d.append(f"M{frame.xn(s)} {y}")
        d.append(f"H{frame.xn(e)}")
        prev_end, prev_y = e, y
    if not d:
        return ""
    return f'<path class="{cls}" d="{"".join(d)}" fill="none" stroke="currentColor"/>'


def _runs(ivs: list[_Iv], test: Callable[[_Iv], bool]) -> list[list[_Iv]]:
    """Consecutive, time-contiguous intervals that pass `test`."""
    runs: list[list[_Iv]] = []
    for iv in ivs:
        if not test(iv):
            continue
        if runs and runs[-1][-1].end == iv.start:
            runs[-1].append(iv)
        else:
            runs.append([iv])
    return runs


def _spike_markers(body: Callable[[str], None], ivs: list[_Iv], frame: _Frame, tz: tzinfo) -> list[str]:
    """A downward triangle above the plot for each run of spike intervals; returns sentences for the desc."""
    spans = []
    for run in _runs(ivs, lambda iv: iv.spike):
        a, b = run[0].start, run[-1].end
        cx = (frame.x(a) + frame.x(b)) / 2
        peak = max((iv.buy for iv in run if iv.buy is not None), default=None)
        title = f"Price spike {_span(a, b, tz)}" + (f", buy up to {_c1(peak)}" if peak is not None else "")
        top = frame.top - 3
        body(f'<g class="spike-marker"><title>{escape(title)}</title>'
             f'<path d="M{_n(cx - 6)} {_n(top - 11)}H{_n(cx + 6)}L{_n(cx)} {_n(top)}Z" stroke="none"/></g>')
        spans.append(_span(a, b, tz))
    if not spans:
        return []
    listed = ", ".join(spans[:4]) + (f" and {len(spans) - 4} more" if len(spans) > 4 else "")
    return [f"Price spike{'s' if len(spans) > 1 else ''} {listed}."]


def _clip_markers(body: Callable[[str], None], ivs: list[_Iv], frame: _Frame, scale: _YScale, tz: tzinfo) -> list[str]:
    """Arrows at the plot edge for values beyond the axis, labelled with the real value."""
    notes: list[str] = []
    last_label_x = -1e9
    for attr, name in (("buy", "Buy"), ("sell", "Sell")):
        for edge in ("above", "below"):
            def off(iv: _Iv, attr: str = attr, edge: str = edge) -> bool:
                v = getattr(iv, attr)
                return v is not None and (v > scale.hi if edge == "above" else v < scale.lo)

            for run in _runs(ivs, off):
                pick = max if edge == "above" else min
                peak = pick(run, key=lambda iv: getattr(iv, attr))
                value = getattr(peak, attr)
                cx = (frame.x(peak.start) + frame.x(peak.end)) / 2
                title = (f"{name} {_c1(value)} ({_dollars(value)}/kWh) at {_span(peak.start, peak.end, tz)},"
                         f" {edge} the scale")
                if len(run) > 1:
                    title += f" ({_span(run[0].start, run[-1].end, tz)})"
                if edge == "above":
                    tip, base, label_y, dy = frame.top + 1, frame.top + 10, frame.top + 1, "0.9em"
                else:
                    tip, base, label_y, dy = frame.bottom - 1, frame.bottom - 10, frame.bottom - 2, "0"
                anchor = "end" if frame.right - cx < CLIP_LABEL_SPACING else "start"
                label_x = cx - 8 if anchor == "end" else cx + 8
                label = ""
                if abs(label_x - last_label_x) >= CLIP_LABEL_SPACING:
                    label = (f'<text class="clip-label" x="{_n(label_x)}" y="{_n(label_y)}" dy="{dy}"'
                             f' text-anchor="{anchor}">{escape(_dollars(value))}</text>')
                    last_label_x = label_x
                body(f'<g class="clipped clipped-{attr}"><title>{escape(title)}</title>'
                     f'<path d="M{_n(cx - 5)} {_n(base)}H{_n(cx + 5)}L{_n(cx)} {_n(tip)}Z" stroke="none"/>{label}</g>')
                notes.append(f"{name.lower()} {_c0(value)} at {_hhmm(peak.start, tz)}")
    if not notes:
        return []
    return [f"Prices beyond {_tick_c(scale.lo)} to {_tick_c(scale.hi)} are drawn at the edge of the chart: "
            + ", ".join(notes[:4]) + (f" and {len(notes) - 4} more" if len(notes) > 4 else "") + "."]


def _message(body: Callable[[str], None], frame: _Frame, text: str) -> None:
    body(f'<text class="chart-message" x="{_n(frame.left + frame.plot_w / 2)}" y="{_n(frame.top + frame.plot_h / 2)}"'
         f' dy="0.35em" text-anchor="middle">{escape(text)}</text>')


def _assemble(kind: str, frame: _Frame, title: str, desc: str, legend: list[tuple[str, str]],
              svg: list[str]) -> Markup:
    items = "".join(f'<li><span class="swatch swatch-{key}"></span>{escape(label)}</li>' for key, label in legend)
    html = (
        f'<div class="price-chart price-chart-{kind}">'
        f'<ul class="price-chart-legend">{items}</ul>'
        f'<svg xmlns="http://www.w3.org/2000/svg" class="price-chart-svg" viewBox="0 0 {frame.width} {frame.height}"'
        f' width="100%" preserveAspectRatio="xMidYMid meet" role="img"'
        f' aria-labelledby="{_ID_TOKEN}-title {_ID_TOKEN}-desc" font-size="12.5">'
        f'<title id="{_ID_TOKEN}-title">{escape(title)}</title><desc id="{_ID_TOKEN}-desc">{escape(desc)}</desc>'
        + "".join(svg)
        + "</svg></div>"
    )
    # Ids must be unique on a page that shows several charts, and the same input must give the same output.
    chart_id = f"chart-{kind}-{hashlib.sha1(html.encode()).hexdigest()[:8]}"
    return Markup(html.replace(_ID_TOKEN, chart_id))


# -- words ------------------------------------------------------------------------------------------------------


def _series_sentences(ivs: list[_Iv], tz: tzinfo, tariff: list[_Slot] | None) -> list[str]:
    out = []
    for attr, negative_means in (("buy", "you are paid to use power"), ("sell", "exporting costs money")):
        name = f"Amber {attr} price"
        values = [(getattr(iv, attr), iv) for iv in ivs if getattr(iv, attr) is not None]
        if not values:
            out.append(f"No {attr} prices." if ivs else "")
            continue
        lo_v, lo_iv = min(values, key=lambda p: p[0])
        hi_v, hi_iv = max(values, key=lambda p: p[0])
        sentence = f"{name} from {_c0(lo_v)} to {_c0(hi_v)}; peak {_c0(hi_v)} at {_hhmm(hi_iv.start, tz)}"
        if lo_v < 0:
            sentence += f"; lowest {_c0(lo_v)} at {_hhmm(lo_iv.start, tz)} ({negative_means})"
        out.append(sentence + ".")
    if tariff:
        buys = [sl.slot.buy * 100 for sl in tariff]
        sells = [sl.slot.sell * 100 for sl in tariff]
        out.append(f"Powerwall tariff buy from {_c0(min(buys))} to {_c0(max(buys))},"
                   f" sell from {_c0(min(sells))} to {_c0(max(sells))}.")
    elif tariff is not None:
        out.append("No tariff on the Powerwall to compare.")
    return [s for s in out if s]


def _zone_name(tz: tzinfo) -> str:
    return getattr(tz, "key", None) or str(tz)


def _hhmm(t: datetime, tz: tzinfo) -> str:
    local = t.astimezone(tz)
    return f"{local.hour:02d}:{local.minute:02d}"


def _day(t: datetime, tz: tzinfo) -> str:
    return _DAYS[t.astimezone(tz).weekday()]


def _span(a: datetime, b: datetime, tz: tzinfo) -> str:
    return f"{_hhmm(a, tz)}–{_hhmm(b, tz)}"


def _iso(t: datetime) -> str:
    u = t.astimezone(UTC)
    return f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}Z"


def _c1(v: float) -> str:
    """Tooltip precision: 31.2c."""
    s = f"{v:.1f}"
    return ("0.0" if s == "-0.0" else s) + "c"


def _c0(v: float) -> str:
    """Sentence precision: 87c, 4.5c."""
    s = f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}"
    return ("0" if s in ("-0", "-0.0") else s) + "c"


def _tick_c(v: float) -> str:
    v = round(v, 6) + 0.0
    return (f"{int(v)}" if v == int(v) else f"{v:.1f}") + "c"


def _dollars(cents: float) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}${abs(cents) / 100:.2f}"
