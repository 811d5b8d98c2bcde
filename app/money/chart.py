"""The Money page's chart (pure: no Flask, no database): per billing day, what imports cost (bar up),
what exports earned (bar down), and the net (a dot), in dollars; each day's numbers on hover/focus (a
<title>) and in the table below the chart."""
from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from html import escape

from app.money.arithmetic import Bill, dollars

WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 52, 8, 12, 28


def _step(span: float) -> float:
    """A round tick step giving about four ticks over `span` dollars."""
    raw = span / 4
    magnitude = 10 ** len(str(int(raw))) / 10 if raw >= 1 else 1.0
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _bounds(values: list[float]) -> tuple[float, float, float]:
    """(low, high, step): zero included, rounded out to whole steps."""
    low, high = min([0.0, *values]), max([0.0, *values])
    step = _step(max(high - low, 1.0))
    return math.floor(low / step) * step, math.ceil(high / step) * step, step


def money_chart(days: dict[date, Bill], chart_id: str = "money-chart") -> str:
    """The SVG for the days shown; '' when there is nothing to draw."""
    if not days:
        return ""
    costs = [float(dollars(b.import_cost)) for b in days.values()]
    earnings = [float(dollars(b.export_earnings)) for b in days.values()]
    nets = [float(dollars(b.net)) for b in days.values()]
    low, high, tick = _bounds([*costs, *nets, *(-e for e in earnings)])
    if high == low:
        high = low + tick
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(days)
    bar = max(step * 0.6, 1.0)

    def y(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    zero = y(0.0)
    parts = [
        f'<svg class="money-chart" id="{chart_id}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc" preserveAspectRatio="none">',
        f'<title id="{chart_id}-title">Money per billing day, dollars</title>',
        f'<desc id="{chart_id}-desc">Bars above zero: what imports cost; bars below zero: what exports earned; '
        f'dots: the net (cost less earnings). Every day with its numbers is in the table below the chart.</desc>',
    ]
    ticks = [low + tick * i for i in range(int(round((high - low) / tick)) + 1)]
    for value in ticks:
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 4}" y="{y(value) + 4:.1f}" text-anchor="end">{"-" if value < 0 else ""}${abs(value):g}</text>')
    label_every = max(1, len(days) // 10)
    for index, (day, bill) in enumerate(days.items()):
        x = LEFT + index * step + (step - bar) / 2
        words = (
            f"{day:%a %d %b}: imports cost {money_text(bill.import_cost)}, exports earned {money_text(bill.export_earnings)}, "
            f"net {money_text(bill.net)}" + (" (partly estimated)" if bill.estimated else "")
        )
        parts.append(f'<g class="day" tabindex="0"><title>{escape(words)}</title>')
        top, bottom = sorted((y(costs[index]), zero))
        parts.append(f'<rect class="cost" x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{max(bottom - top, 0.5):.1f}"/>')
        top, bottom = sorted((y(-earnings[index]), zero))
        parts.append(f'<rect class="earn" x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{max(bottom - top, 0.5):.1f}"/>')
        parts.append(f'<circle class="net" cx="{x + bar / 2:.1f}" cy="{y(nets[index]):.1f}" r="3.5"/>')
        parts.append("</g>")
        if index % label_every == 0:
            parts.append(
                f'<text class="axis" x="{x + bar / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{day:%d/%m}</text>'
            )
    parts.append(f'<line class="zero" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}"/>')
    parts.append("</svg>")
    return "".join(parts)


def money_text(cents: Decimal) -> str:
    """Cents as a dollar figure for the page: -$1.23 / $4.56."""
    value = dollars(cents)
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"
