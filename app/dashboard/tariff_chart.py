"""The tariff page's chart (pure: no Flask, no database): the 48 half hours of the pushed tariff as buy
bars and a sell line, now marked, spike slots and slots where money runs the other way shaded, each slot
with its numbers on hover (a <title>), and the same numbers in the list below the chart."""
from __future__ import annotations

from html import escape
from typing import Any

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 12, 28
SPIKE_FLAGS = {"spike", "potential_spike"}
NEGATIVE_FLAGS = {"export_costs_money", "buy_clamped_negative", "sell_clamped_negative"}


def _scale(values: list[float]) -> tuple[float, float]:
    low = min([0.0, *values])
    high = max([10.0, *values])
    pad = (high - low) * 0.08
    return low - (pad if low < 0 else 0), high + pad


def tariff_chart(slots: list[dict[str, Any]], chart_id: str = "tariff-chart") -> str:
    """The SVG for a push's explained slots (rolling order, the current slot first); '' without slots."""
    if not slots:
        return ""
    buys = [float(s["buy"]) * 100 for s in slots]
    sells = [float(s["sell"]) * 100 for s in slots]
    low, high = _scale(buys + sells)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(slots)

    def y(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    parts = [
        f'<svg class="tariff-chart" id="{chart_id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="none">',
        f'<title id="{chart_id}-title">The tariff on the Powerwall, the next 24 hours, c/kWh</title>',
        f'<desc id="{chart_id}-desc">Bars: what buying from the grid costs each half hour; line: what exporting earns. '
        f'Red bands: spike (or possible spike); blue bands: exporting costs money or prices below zero. '
        f'Every half hour with its numbers is listed below the chart.</desc>',
    ]
    for index, slot in enumerate(slots):
        flags = set(slot.get("flags", ()))
        x = LEFT + index * step
        if flags & SPIKE_FLAGS:
            parts.append(f'<rect class="band band-spike" x="{x:.1f}" y="{TOP}" width="{step:.1f}" height="{plot_h}"/>')
        elif flags & NEGATIVE_FLAGS:
            parts.append(f'<rect class="band band-negative" x="{x:.1f}" y="{TOP}" width="{step:.1f}" height="{plot_h}"/>')
    zero = y(0.0)
    for value in _ticks(low, high):
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}c</text>')
    for index, slot in enumerate(slots):
        x = LEFT + index * step
        top, bottom = sorted((y(buys[index]), zero))
        words = [f'{escape(slot["wall_from"])}–{escape(slot["wall_to"])}: buy {buys[index]:.1f}c, sell {sells[index]:.1f}c']
        flags = set(slot.get("flags", ()))
        if flags & SPIKE_FLAGS:
            words.append("spike" if "spike" in flags else "spike possible")
        if flags & NEGATIVE_FLAGS:
            words.append("exporting costs money" if "export_costs_money" in flags else "below zero")
        if slot.get("current"):
            words.append("now")
        parts.append(
            f'<g class="slot-bar{" now" if slot.get("current") else ""}"><title>{", ".join(words)}</title>'
            f'<rect class="buy" x="{x + 1:.1f}" y="{top:.1f}" width="{max(step - 2, 1):.1f}" height="{max(bottom - top, 0.5):.1f}"/></g>'
        )
        if index % 6 == 0:
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}">{escape(slot["wall_from"])}</text>')
    points = " ".join(f"{LEFT + (i + 0.5) * step:.1f},{y(v):.1f}" for i, v in enumerate(sells))
    parts.append(f'<polyline class="sell" points="{points}"/>')
    parts.append(f'<line class="now-line" x1="{LEFT + 0.5:.1f}" x2="{LEFT + 0.5:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>')
    parts.append(f'<text class="now-label" x="{LEFT + 3}" y="{TOP + 10}">Now</text>')
    parts.append("</svg>")
    return "".join(parts)


def _ticks(low: float, high: float) -> list[float]:
    span = high - low
    step = next(s for s in (5, 10, 20, 25, 50, 100, 200, 500, 1000, 2500) if span / s <= 5)
    start = int(low // step) * step
    return [v for v in range(int(start), int(high) + 1, step) if low <= v <= high]
