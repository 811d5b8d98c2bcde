"""The dashboard's SVG price charts: pure, parsed with ElementTree, no app, database or clock."""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest
from markupsafe import Markup
from zoneinfo import ZoneInfo

from app.dashboard.charts import M_LEFT, M_RIGHT, PricePoint, TariffSlot, forecast_chart, history_chart

UTC = timezone.utc
SYDNEY = ZoneInfo("Australia/Sydney")
BRISBANE = ZoneInfo("Australia/Brisbane")
ADELAIDE = ZoneInfo("Australia/Adelaide")
SVG = "{http://www.w3.org/2000/svg}"
WIDTH = 720
PLOT_W = WIDTH - M_LEFT - M_RIGHT

# 24 Nov 2026 14:00 in Sydney (AEDT, UTC+11) is 03:00 UTC.
SLOT0 = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
NOW = SLOT0 + timedelta(minutes=7)


# -- helpers -------------------------------------------------------------------------------------------------


def parse(markup: Markup) -> ET.Element:
    assert isinstance(markup, Markup)
    return ET.fromstring(str(markup))


def classes(el: ET.Element) -> list[str]:
    return el.get("class", "").split()


def by_class(root: ET.Element, cls: str) -> list[ET.Element]:
    return [el for el in root.iter() if cls in classes(el)]


def title_of(el: ET.Element) -> str:
    title = el.find(f"{SVG}title")
    assert title is not None, ET.tostring(el)
    return title.text or ""


def svg_of(root: ET.Element) -> ET.Element:
    svg = root.find(f"{SVG}svg")
    assert svg is not None
    return svg


def x_at(offset: timedelta, span: timedelta = timedelta(hours=24)) -> float:
    return round(M_LEFT + offset / span * PLOT_W, 1)


def half_hours(start: datetime, prices: list[tuple[float | None, float | None]], kind: str = "forecast",
               minutes: int = 30, **flags: bool) -> list[PricePoint]:
    step = timedelta(minutes=minutes)
    return [PricePoint(start + i * step, start + (i + 1) * step, buy, sell, kind, **flags)
            for i, (buy, sell) in enumerate(prices)]


def tariff(start: datetime, n: int = 48, buy: float = 0.30, sell: float = 0.08) -> list[TariffSlot]:
    return [TariffSlot(start + timedelta(minutes=30 * i), start + timedelta(minutes=30 * (i + 1)), buy, sell)
            for i in range(n)]


def tick_labels(root: ET.Element) -> list[tuple[str, float]]:
    return [(el.text or "", float(el.get("x", "nan"))) for el in by_class(root, "tick-label")]


def path_ys(path: ET.Element) -> list[float]:
    """The y of every horizontal run of a step path (M x y / V y)."""
    d = path.get("d", "")
    return [float(m) for m in re.findall(r"M[-\d.]+ ([-\d.]+)", d) + re.findall(r"V([-\d.]+)", d)]


def zero_y(root: ET.Element) -> float:
    (line,) = by_class(root, "zero-line")
    assert line.get("y1") == line.get("y2")
    return float(line.get("y1", "nan"))


DAY = [(0.18 + 0.01 * (i % 10), 0.05) for i in range(48)]


# -- structure -------------------------------------------------------------------------------------------------


def test_forecast_counts_tariff_slots_and_intervals_for_browser_tests() -> None:
    points = half_hours(SLOT0, [(0.25, 0.07)], kind="current", minutes=5)
    points += half_hours(SLOT0 + timedelta(minutes=30), DAY[:47])
    root = parse(forecast_chart(points, tariff(SLOT0), NOW, SYDNEY))

    assert len(by_class(root, "tariff-slot")) == 48
    intervals = by_class(root, "price-interval")
    assert len(intervals) == 48
    assert [el.get("data-kind") for el in intervals].count("current") == 1
    assert {el.get("data-kind") for el in intervals} == {"current", "forecast"}
    first = by_class(root, "tariff-slot")[0]
    assert first.get("data-start") == "2026-11-24T03:00:00Z"
    assert title_of(first) == "14:00–14:30 Powerwall tariff buy 30.0c sell 8.0c"


def test_one_tariff_slot_element_per_slot_even_outside_the_window() -> None:
    slots = tariff(SLOT0 - timedelta(hours=1), n=50)  # two slots before the current half hour
    root = parse(forecast_chart([], slots, NOW, SYDNEY))
    elements = by_class(root, "tariff-slot")
    assert len(elements) == 50
    assert [len(by_class(el, "tariff-band")) for el in elements[:3]] == [0, 0, 1]


def test_svg_scales_is_accessible_and_needs_no_inline_style_or_script() -> None:
    html = str(forecast_chart(half_hours(SLOT0, DAY), tariff(SLOT0), NOW, SYDNEY))
    root = ET.fromstring(html)
    svg = svg_of(root)
    assert svg.get("viewBox") == "0 0 720 260"
    assert svg.get("width") == "100%"
    assert svg.get("role") == "img"
    title_id, desc_id = svg.get("aria-labelledby", "").split()
    assert svg.find(f"{SVG}title").get("id") == title_id
    assert svg.find(f"{SVG}desc").get("id") == desc_id
    assert "style=" not in html and "<style" not in html and "<script" not in html and "on" + "load" not in html
    assert "classes" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    legend = [li.itertext() for li in root.iter("li")]
    assert ["".join(parts) for parts in legend] == ["Amber buy", "Amber sell", "Powerwall buy", "Powerwall sell"]


def test_coordinates_are_rounded_to_one_decimal() -> None:
    points = half_hours(SLOT0 + timedelta(minutes=5), [(0.1234567, -0.0333333)] * 7, minutes=5)
    html = str(forecast_chart(points + half_hours(SLOT0 + timedelta(hours=1), DAY[:40]), tariff(SLOT0), NOW, SYDNEY))
    numbers = re.findall(r' (?:x|y|x1|x2|y1|y2|width|height)="([^"%]*)"', html)
    numbers += re.findall(r"[-\d.]+", " ".join(re.findall(r' d="([^"]*)"', html)))
    assert numbers
    assert [n for n in numbers if not re.fullmatch(r"-?\d+(\.\d)?", n)] == []


def test_output_is_deterministic_and_ids_differ_between_charts() -> None:
    points = half_hours(SLOT0, DAY)
    one = forecast_chart(points, tariff(SLOT0), NOW, SYDNEY)
    assert forecast_chart(list(points), tariff(SLOT0), NOW, SYDNEY) == one
    other = forecast_chart(points[:10], tariff(SLOT0), NOW, SYDNEY)
    history = history_chart(half_hours(SLOT0 - timedelta(hours=24), DAY, kind="actual"),
                            SLOT0 - timedelta(hours=24), SLOT0, SYDNEY)
    ids = [svg_of(parse(chart)).find(f"{SVG}title").get("id") for chart in (one, other, history)]
    assert len(set(ids)) == 3


def test_text_is_escaped() -> None:
    nasty = '<script>alert("x")</script>&'
    points = [PricePoint(SLOT0, SLOT0 + timedelta(minutes=30), 0.2, 0.1, nasty)]
    html = str(forecast_chart(points, [], NOW, SYDNEY))
    root = ET.fromstring(html)  # still well-formed
    assert "<script" not in html
    (interval,) = by_class(root, "price-interval")
    assert interval.get("data-kind") == nasty
    assert title_of(interval) == f"14:00–14:30 buy 20.0c sell 10.0c ({nasty})"


@pytest.mark.parametrize("make", [
    lambda naive: forecast_chart([], [], naive, SYDNEY),
    lambda naive: forecast_chart([PricePoint(naive, naive + timedelta(minutes=5), 0.1, 0.1, "forecast")], [], NOW,
                                 SYDNEY),
    lambda naive: forecast_chart([], [TariffSlot(SLOT0, naive, 0.1, 0.1)], NOW, SYDNEY),
    lambda naive: history_chart([], naive, SLOT0, SYDNEY),
    lambda naive: history_chart([], SLOT0 - timedelta(hours=24), naive, SYDNEY),
    lambda naive: history_chart([PricePoint(SLOT0, naive, 0.1, 0.1, "actual")], SLOT0 - timedelta(hours=24), SLOT0,
                                SYDNEY),
])
def test_naive_datetimes_are_rejected(make) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        make(datetime(2026, 11, 24, 3, 0))


def test_bad_window_and_size_are_rejected() -> None:
    with pytest.raises(ValueError):
        history_chart([], SLOT0, SLOT0, SYDNEY)
    with pytest.raises(ValueError):
        forecast_chart([], [], NOW, SYDNEY, width=100)


# -- time axis ----------------------------------------------------------------------------------------------


def test_now_line_and_window_start_at_the_current_half_hour() -> None:
    root = parse(forecast_chart(half_hours(SLOT0, DAY), tariff(SLOT0), NOW, SYDNEY))
    (line,) = by_class(root, "now-line")
    assert float(line.get("x1")) == x_at(timedelta(minutes=7))
    assert line.get("x1") == line.get("x2")
    (now,) = by_class(root, "now")
    assert title_of(now) == "Now 14:07"
    assert [t.text for t in by_class(root, "now-label")] == ["Now"]
    # The first tariff band starts at the left edge: the window starts at 14:00 local, not at `now`.
    band = by_class(root, "tariff-band")[0]
    assert float(band.get("x")) == M_LEFT
    labels = dict(tick_labels(root))
    assert "15:00" not in labels  # too close to the "Now" label
    assert labels["18:00"] == x_at(timedelta(hours=4))
    assert labels["00:00"] == x_at(timedelta(hours=10))
    assert "12:00" in labels  # 22 h later, still inside the 24 h window


def test_now_in_the_middle_of_the_window_at_a_half_hour_boundary() -> None:
    now = SLOT0 + timedelta(minutes=30)
    root = parse(forecast_chart([], tariff(now), now, SYDNEY))
    (line,) = by_class(root, "now-line")
    assert float(line.get("x1")) == M_LEFT


def test_ticks_on_the_sydney_spring_forward_day() -> None:
    # 4 Oct 2026: 02:00 AEST becomes 03:00 AEDT. Local midnight is 14:00 UTC the day before.
    start = datetime(2026, 10, 3, 14, 0, tzinfo=UTC)
    root = parse(history_chart([], start, start + timedelta(hours=24), SYDNEY))
    labels = tick_labels(root)
    assert [text for text, _ in labels] == [
        "00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00", "00:00"]
    positions = dict(labels[:-1])
    assert positions["03:00"] == x_at(timedelta(hours=2))  # only two real hours after midnight
    assert positions["21:00"] == x_at(timedelta(hours=20))
    assert labels[-1][1] == x_at(timedelta(hours=23))  # the next midnight: a 23-hour day


def test_ticks_on_the_sydney_fall_back_day() -> None:
    # 5 Apr 2026: 03:00 AEDT becomes 02:00 AEST. Local midnight is 13:00 UTC the day before.
    start = datetime(2026, 4, 4, 13, 0, tzinfo=UTC)
    root = parse(history_chart([], start, start + timedelta(hours=24), SYDNEY))
    labels = tick_labels(root)
    assert [text for text, _ in labels] == ["00:00", "03:00", "06:00", "09:00", "12:00", "15:00", "18:00", "21:00"]
    positions = dict(labels)
    assert positions["03:00"] == x_at(timedelta(hours=4))  # four real hours after midnight
    assert positions["21:00"] == x_at(timedelta(hours=22))


def test_ticks_in_brisbane_and_adelaide() -> None:
    start = datetime(2026, 10, 3, 14, 0, tzinfo=UTC)  # midnight in Brisbane (UTC+10, no DST)
    labels = tick_labels(parse(history_chart([], start, start + timedelta(hours=24), BRISBANE)))
    assert [text for text, _ in labels][:3] == ["00:00", "03:00", "06:00"]
    assert dict(labels[:-1])["03:00"] == x_at(timedelta(hours=3))
    # Adelaide is UTC+10:30 in summer: local hours fall on the UTC half hour.
    start = datetime(2026, 11, 23, 13, 30, tzinfo=UTC)  # midnight in Adelaide
    labels = tick_labels(parse(history_chart([], start, start + timedelta(hours=24), ADELAIDE)))
    assert labels[0] == ("00:00", M_LEFT)
    assert dict(labels[:-1])["06:00"] == x_at(timedelta(hours=6))


def test_forecast_on_the_spring_forward_day_is_24_real_hours() -> None:
    now = datetime(2026, 10, 3, 2, 0, tzinfo=UTC)  # 12:00 AEST on Saturday
    root = parse(forecast_chart(half_hours(now, DAY), tariff(now), now, SYDNEY))
    labels = dict(tick_labels(root))
    assert labels["03:00"] == x_at(timedelta(hours=14))  # 12:00 AEST + 14 real hours = 03:00 AEDT
    assert labels["12:00"] == x_at(timedelta(hours=23))  # the window ends at 13:00 AEDT
    assert len(by_class(root, "tariff-slot")) == 48


# -- price axis ------------------------------------------------------------------------------------------------


def test_negative_prices_show_the_zero_line_and_shading() -> None:
    prices = [(0.20, 0.05)] * 20 + [(-0.03, -0.10)] * 8 + [(0.25, 0.06)] * 20
    root = parse(forecast_chart(half_hours(SLOT0, prices), [], NOW, SYDNEY))
    y0 = zero_y(root)
    (zone,) = by_class(root, "negative-zone")
    assert float(zone.get("y")) == y0
    (sell,) = by_class(root, "line-sell")
    (buy,) = by_class(root, "line-buy")
    assert max(path_ys(sell)) > y0 and max(path_ys(buy)) > y0  # below the zero line (SVG y grows down)
    negative = [el for el in by_class(root, "price-interval") if "negative" in classes(el)]
    assert len(negative) == 8
    assert "sell -10.0c" in title_of(negative[0])
    desc = svg_of(root).find(f"{SVG}desc").text
    assert "lowest -10c at 00:00 (exporting costs money)" in desc
    assert "lowest -3.0c at 00:00 (you are paid to use power)" in desc
    labels = [el.text for el in by_class(root, "y-label")]
    assert "0c" in labels and any(label.startswith("-") for label in labels)


def test_positive_prices_have_zero_at_the_bottom_and_no_shading() -> None:
    root = parse(forecast_chart(half_hours(SLOT0, DAY), [], NOW, SYDNEY))
    assert not by_class(root, "negative-zone")
    assert zero_y(root) == 260 - 34
    assert "Below zero" not in "".join(root.find("ul").itertext())


def test_a_huge_spike_is_clipped_and_labelled_with_its_real_value() -> None:
    prices = [(0.20 + 0.002 * i, 0.06) for i in range(48)]
    prices[8] = (15.20, 14.10)  # 18:00 local
    points = half_hours(SLOT0, prices)
    points[8] = PricePoint(points[8].start, points[8].end, 15.20, 14.10, "forecast", spike=True)
    root = parse(forecast_chart(points, tariff(SLOT0), NOW, SYDNEY))

    top_label = max(float(el.text.rstrip("c")) for el in by_class(root, "y-label"))
    assert top_label <= 300  # the axis is not stretched to $15
    (buy_mark,) = by_class(root, "clipped-buy")
    assert "1520.0c ($15.20/kWh) at 18:00–18:30, above the scale" in title_of(buy_mark)
    assert [t.text for t in by_class(buy_mark, "clip-label")] == ["$15.20"]
    (sell_mark,) = by_class(root, "clipped-sell")
    assert "1410.0c ($14.10/kWh)" in title_of(sell_mark)
    # Normal prices still use most of the height: 20c sits well above the zero line.
    (buy,) = by_class(root, "line-buy")
    assert zero_y(root) - max(path_ys(buy)) > 10
    desc = svg_of(root).find(f"{SVG}desc").text
    assert "drawn at the edge of the chart: buy 1520c at 18:00, sell 1410c at 18:00" in desc
    assert "Price spike 18:00–18:30." in desc


def test_a_long_expensive_stretch_is_not_clipped() -> None:
    prices = [(0.30, 0.08)] * 36 + [(2.80, 2.00)] * 12  # six hours at $2.80: the data, not an outlier
    root = parse(forecast_chart(half_hours(SLOT0, prices), [], NOW, SYDNEY))
    assert not by_class(root, "clipped")


def test_spike_markers_per_run_and_spike_intervals() -> None:
    points = half_hours(SLOT0, DAY)
    spiky = {6, 7, 8, 20}
    points = [PricePoint(p.start, p.end, p.buy, p.sell, p.kind, spike=i in spiky) for i, p in enumerate(points)]
    root = parse(forecast_chart(points, [], NOW, SYDNEY))
    markers = by_class(root, "spike-marker")
    assert [title_of(m).split(",")[0] for m in markers] == ["Price spike 17:00–18:30", "Price spike 00:00–00:30"]
    assert len([el for el in by_class(root, "price-interval") if "spike" in classes(el)]) == 4
    assert "Spike" in "".join(root.find("ul").itertext())


def test_all_prices_equal_still_get_a_readable_axis() -> None:
    for value in (0.25, 0.0):
        points = half_hours(SLOT0, [(value, value)] * 48)
        root = parse(forecast_chart(points, tariff(SLOT0, buy=value, sell=value), NOW, SYDNEY))
        labels = [el.text for el in by_class(root, "y-label")]
        assert len(labels) >= 2
        (buy,) = by_class(root, "line-buy")
        assert set(path_ys(buy)) == {path_ys(buy)[0]}


def test_missing_buy_or_sell_breaks_only_that_line() -> None:
    prices = [(0.2, 0.05)] * 10 + [(None, 0.05)] * 2 + [(0.2, None)] * 2 + [(0.2, 0.05)] * 10
    root = parse(forecast_chart(half_hours(SLOT0, prices), [], NOW, SYDNEY))
    (buy,) = by_class(root, "line-buy")
    (sell,) = by_class(root, "line-sell")
    assert buy.get("d").count("M") == 2 and sell.get("d").count("M") == 2
    titles = [title_of(el) for el in by_class(root, "price-interval")]
    assert titles[10] == "19:00–19:30 buy n/a sell 5.0c (forecast)"
    assert titles[12] == "20:00–20:30 buy 20.0c sell n/a (forecast)"


def test_single_point_and_points_outside_the_window() -> None:
    inside = PricePoint(SLOT0 + timedelta(hours=2), SLOT0 + timedelta(hours=2, minutes=30), 0.31, 0.08, "forecast")
    outside = [
        PricePoint(SLOT0 - timedelta(hours=3), SLOT0 - timedelta(hours=2), 9.0, 9.0, "actual"),
        PricePoint(SLOT0 + timedelta(hours=30), SLOT0 + timedelta(hours=31), 9.0, 9.0, "forecast"),
        PricePoint(SLOT0, SLOT0, 9.0, 9.0, "forecast"),  # empty interval
    ]
    root = parse(forecast_chart([*outside, inside], [], NOW, SYDNEY))
    (interval,) = by_class(root, "price-interval")
    assert title_of(interval) == "16:00–16:30 buy 31.0c sell 8.0c (forecast)"
    assert float(interval.get("x")) == x_at(timedelta(hours=2))
    assert not by_class(root, "clipped")
    assert by_class(root, "line-buy")[0].get("d").count("H") == 1


def test_mixed_five_and_thirty_minute_points_do_not_overlap() -> None:
    fives = half_hours(SLOT0, [(0.40, 0.10)] * 3, kind="actual", minutes=5)  # 14:00-14:15 settled
    thirty = half_hours(SLOT0, [(0.25, 0.05)] * 4)  # 14:00-16:00 forecast, the first overlaps
    root = parse(forecast_chart([*thirty, *fives], [], NOW, SYDNEY))
    intervals = by_class(root, "price-interval")
    titles = [title_of(el) for el in intervals]
    assert titles[:4] == [
        "14:00–14:05 buy 40.0c sell 10.0c (actual)",
        "14:05–14:10 buy 40.0c sell 10.0c (actual)",
        "14:10–14:15 buy 40.0c sell 10.0c (actual)",
        "14:15–14:30 buy 25.0c sell 5.0c (forecast)",
    ]
    edges = [(float(el.get("x")), float(el.get("x")) + float(el.get("width"))) for el in intervals]
    assert all(a[1] <= b[0] + 0.11 for a, b in zip(edges, edges[1:]))
    (buy,) = by_class(root, "line-buy")
    assert buy.get("d").count("M") == 1  # one continuous step line


def test_tooltips_combine_amber_and_the_powerwall_tariff() -> None:
    points = half_hours(SLOT0, [(0.312, 0.081)], minutes=30)
    root = parse(forecast_chart(points, tariff(SLOT0), NOW, BRISBANE))  # Brisbane: 03:00 UTC is 13:00
    (interval,) = by_class(root, "price-interval")
    assert title_of(interval) == "13:00–13:30 buy 31.2c sell 8.1c (forecast) · Powerwall buy 30.0c sell 8.0c"


def test_empty_forecast_is_friendly() -> None:
    root = parse(forecast_chart([], [], NOW, SYDNEY))
    assert [el.text for el in by_class(root, "chart-message")] == ["No forecast available yet"]
    assert by_class(root, "now-line")
    root = parse(forecast_chart([], tariff(SLOT0), NOW, SYDNEY))
    assert [el.text for el in by_class(root, "chart-message")] == ["No Amber forecast available"]


def test_forecast_description_in_words() -> None:
    prices = [(0.18, 0.04)] * 8 + [(0.87, 0.12)] + [(0.30, 0.06)] * 39
    desc = svg_of(parse(forecast_chart(half_hours(SLOT0, prices), tariff(SLOT0), NOW, SYDNEY))).find(f"{SVG}desc").text
    assert "Times are Australia/Sydney local time" in desc
    assert "Amber buy price from 18c to 87c; peak 87c at 18:00." in desc
    assert "Amber sell price from 4.0c to 12c; peak 12c at 18:00." in desc
    assert "Powerwall tariff buy from 30c to 30c, sell from 8.0c to 8.0c." in desc
    assert desc.endswith("Now is 14:07.")


# -- history ------------------------------------------------------------------------------------------------------


def test_history_marks_gaps_and_breaks_the_lines() -> None:
    start = SLOT0 - timedelta(hours=24)  # 14:00 yesterday, Sydney
    points = half_hours(start, DAY, kind="actual")
    missing = {2, 46}  # 15:00-15:30 and 13:00-13:30
    kept = [p for i, p in enumerate(points) if i not in missing]
    root = parse(history_chart(kept, start, SLOT0, SYDNEY))
    gaps = by_class(root, "gap")
    assert [title_of(g) for g in gaps] == ["no data 15:00–15:30", "no data 13:00–13:30"]
    assert float(gaps[0].get("x")) == x_at(timedelta(hours=1))
    assert gaps[0].get("fill", "").startswith("url(#chart-history-")
    (buy,) = by_class(root, "line-buy")
    assert buy.get("d").count("M") == 3
    desc = svg_of(root).find(f"{SVG}desc").text
    assert "No data 15:00–15:30, 13:00–13:30." in desc
    assert "No data" in "".join(root.find("ul").itertext())


def test_history_leading_and_trailing_gaps() -> None:
    start = SLOT0 - timedelta(hours=24)
    points = half_hours(start + timedelta(hours=20), [(0.2, 0.05)] * 6, kind="actual", minutes=5)  # 10:00-10:30
    root = parse(history_chart(points, start, SLOT0, SYDNEY))
    assert [title_of(g) for g in by_class(root, "gap")] == ["no data 14:00–10:00", "no data 10:30–14:00"]
    # Settled prices arrive a sync late: data up to 13:55 is not a gap at 14:04, it is at 14:20.
    points = half_hours(start, [(0.2, 0.05)] * 287, kind="actual", minutes=5)
    root = parse(history_chart(points, start, SLOT0 + timedelta(minutes=4), SYDNEY))
    assert not by_class(root, "gap")
    root = parse(history_chart(points, start, SLOT0 + timedelta(minutes=20), SYDNEY))
    assert [title_of(g) for g in by_class(root, "gap")] == ["no data 13:55–14:20"]


def test_history_shows_only_settled_prices() -> None:
    start = SLOT0 - timedelta(hours=24)
    points = half_hours(start, DAY[:10], kind="actual")
    points += half_hours(start + timedelta(hours=5), DAY[:10], kind="forecast")
    root = parse(history_chart(points, start, start + timedelta(hours=5), SYDNEY))
    assert {el.get("data-kind") for el in by_class(root, "price-interval")} == {"actual"}


def test_history_with_neither_price_is_a_gap() -> None:
    start = SLOT0 - timedelta(hours=24)
    points = half_hours(start, [(0.2, 0.05), (None, None), (0.2, 0.05)], kind="actual")
    root = parse(history_chart(points, start, start + timedelta(hours=1, minutes=30), SYDNEY))
    assert [title_of(g) for g in by_class(root, "gap")] == ["no data 14:30–15:00"]


def test_empty_history_is_friendly() -> None:
    start = SLOT0 - timedelta(hours=24)
    root = parse(history_chart([], start, SLOT0, SYDNEY))
    assert [el.text for el in by_class(root, "chart-message")] == ["No price history yet"]
    assert not by_class(root, "gap") and not by_class(root, "price-interval")
    assert "No price history yet." in svg_of(root).find(f"{SVG}desc").text
    assert [el.text for el in by_class(root, "y-label")] == ["0c"]
    old = half_hours(start - timedelta(days=3), DAY, kind="actual")
    root = parse(history_chart(old, start, SLOT0, SYDNEY))
    assert [el.text for el in by_class(root, "chart-message")] == ["No prices recorded in this period"]


def test_history_with_a_single_point_and_a_spike() -> None:
    start = SLOT0 - timedelta(hours=24)
    at = start + timedelta(hours=4)
    point = PricePoint(at, at + timedelta(minutes=5), 15.0, -0.5, "actual", spike=True)
    root = parse(history_chart([point], start, SLOT0, SYDNEY))
    (interval,) = by_class(root, "price-interval")
    assert "spike" in classes(interval) and "negative" in classes(interval)
    assert title_of(interval) == "18:00–18:05 buy 1500.0c sell -50.0c (actual, spike)"
    assert len(by_class(root, "spike-marker")) == 1
    assert len(by_class(root, "gap")) == 2


# -- speed ---------------------------------------------------------------------------------------------------------


def test_a_full_day_of_five_minute_points_renders_fast() -> None:
    points = [PricePoint(SLOT0 + timedelta(minutes=5 * i), SLOT0 + timedelta(minutes=5 * (i + 1)),
                         0.2 + 0.001 * (i % 50), 0.05 - 0.001 * (i % 70), "forecast", spike=i % 97 == 0)
              for i in range(288)]
    slots = tariff(SLOT0)
    forecast_chart(points, slots, NOW, SYDNEY)
    best = float("inf")
    for _ in range(5):
        began = time.perf_counter()
        chart = forecast_chart(points, slots, NOW, SYDNEY)
        best = min(best, time.perf_counter() - began)
    assert len(by_class(parse(chart), "price-interval")) == 288
    assert best < 0.050


def test_kind_may_be_the_amber_interval_kind_enum() -> None:
    from app.prices import IntervalKind

    start = SLOT0 - timedelta(hours=24)
    kind = IntervalKind.ACTUAL
    points = [PricePoint(start, start + timedelta(minutes=30), 0.2, 0.05, kind)]  # type: ignore[arg-type]
    root = parse(history_chart(points, start, start + timedelta(minutes=30), SYDNEY))
    (interval,) = by_class(root, "price-interval")
    assert interval.get("data-kind") == "actual"


@pytest.mark.parametrize("low, high", [(-0.072, 0.072), (0.0, 0.87), (-0.25, 0.40), (0.0, 0.001), (-0.9, -0.1)])
def test_at_most_five_round_price_labels(low: float, high: float) -> None:
    points = half_hours(SLOT0, [(low, high), (high, low)])
    root = parse(forecast_chart(points, [], NOW, SYDNEY))
    values = [float(el.text.rstrip("c")) for el in by_class(root, "y-label")]
    assert 2 <= len(values) <= 5 and 0.0 in values
    steps = {round(b - a, 6) for a, b in zip(values, values[1:])}
    assert len(steps) == 1 and steps.pop() in {1, 2, 2.5, 5, 10, 20, 25, 50, 100}


def test_midnight_is_marked_with_the_day() -> None:
    root = parse(forecast_chart(half_hours(SLOT0, DAY), [], NOW, SYDNEY))
    (midnight,) = by_class(root, "grid-midnight")
    assert float(midnight.get("x1")) == x_at(timedelta(hours=10))
    assert [el.text for el in by_class(root, "day-label")] == ["Wed"]


def test_charts_css_styles_every_class_the_charts_use() -> None:
    from pathlib import Path

    css = (Path(__file__).parent.parent / "app" / "static" / "charts.css").read_text()
    start = SLOT0 - timedelta(hours=24)
    points = half_hours(SLOT0, [(-0.1, -0.2), (15.0, 0.1)] + DAY[:40], spike=True)
    history = half_hours(start, [(0.2, -0.05), (None, None), (20.0, 0.1)], kind="actual", spike=True)
    used: set[str] = set()
    for chart in (forecast_chart(points, tariff(SLOT0), NOW, SYDNEY), history_chart(history, start, SLOT0, SYDNEY)):
        used |= {cls for el in parse(chart).iter() for cls in classes(el)}
    structural = {"now", "y-axis", "x-axis", "estimate", "negative", "tick-label", "price-chart-forecast",
                  "price-chart-history", "clipped-buy", "clipped-sell", "swatch-buy"}
    missing = sorted(cls for cls in used - structural if f".{cls}" not in css)
    assert missing == []
    assert "prefers-color-scheme: dark" in css and "@container" in css


def test_amber_levels_colour_a_band_and_say_their_word() -> None:
    """Amber's descriptor of each interval colours a band under the forecast, never colour alone: its word is
    in the band's title and in the interval's tooltip; an unknown descriptor draws nothing (and is not echoed)."""
    levels = ["veryLow", "neutral", "high", "spike", "negative", "<script>"]
    points = [PricePoint(SLOT0 + timedelta(minutes=30 * i), SLOT0 + timedelta(minutes=30 * (i + 1)), 0.2, 0.05, "forecast",
                         descriptor=d) for i, d in enumerate(levels)]
    root = parse(forecast_chart(points, tariff(SLOT0), NOW, SYDNEY))
    bands = by_class(root, "level")
    assert [c for el in bands for c in classes(el) if c.startswith("level-")] == [
        "level-veryLow", "level-neutral", "level-high", "level-spike", "level-extremelyLow"]
    assert [title_of(el).split("Amber says ")[1] for el in bands] == ["very low", "neutral", "high", "spike", "extremely low"]
    tooltips = [title_of(el) for el in by_class(root, "price-interval")]
    assert "(forecast), Amber says high" in tooltips[2] and "script" not in str(ET.tostring(root))
    assert "Amber's level" in str(ET.tostring(root, encoding="unicode"))
