"""The dashboard in a real browser: Playwright drives Debian's Chromium against the app served over
loopback, with the simulator in place of Amber and Tesla and one frozen clock shared by both.

The module signs up the first account and configures it through the real pages once, then each test
opens its own page. Screenshots go to test-artifacts/. Without /usr/bin/chromium or playwright the
tests skip, unless REQUIRE_BROWSER=1 (CI), which makes that a failure."""
from __future__ import annotations

import csv
import io

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from flask import Flask

from app import create_app
from app.extensions import db
from app.simulator import identity
from app.simulator.server import create_simulator_app, start_simulator_thread
from app.sync import run_tick
from tests.browser_support import (
    ARTIFACTS,
    DESKTOP,
    PHONE,
    BrowserProblems,
    launch_chromium,
    overflowing,
    serve,
    skip_or_fail_without_browser,
)
from tests.conftest import FakeClock, make_config

pytestmark = pytest.mark.browser

EMAIL = "owner@example.com"
PASSWORD = "a long browser password"
SYDNEY = ZoneInfo(identity.SITE_TIME_ZONE)
# 14:12:40 AEDT: well inside a 5-minute interval, so the simulator's current price is confirmed.
START = datetime(2026, 11, 24, 3, 12, 40, tzinfo=timezone.utc)
TIMEOUT_MS = 5000  # every wait is bounded; nothing here sleeps to let time pass
PAGES = {"dashboard": "/", "settings": "/settings", "tariff": "/tariff", "history": "/history", "household": "/household",
         "notifications": "/settings/notifications", "money": "/money?from=2026-11-20&to=2026-11-24"}
PHONE_390 = {"width": 390, "height": 844}


@dataclass
class Stack:
    """The app served over loopback, the simulator behind it and the clock they share."""

    app: Flask
    base: str
    simulator: str
    clock: FakeClock

    def tick(self) -> list[Any]:
        """One scheduler tick, in-process (the scheduler itself is off)."""
        with self.app.app_context():
            return run_tick(self.clock.current, sleep=self.sleep)

    def sleep(self, seconds: float) -> None:
        self.clock.advance(seconds=seconds)

    def powerwall(self) -> dict[str, Any]:
        response = requests.get(f"{self.simulator}/_sim/state", timeout=5)
        response.raise_for_status()
        return response.json()["powerwall"]

    def amber_buy_now(self) -> float:
        """The simulator's current 5-minute general price, read the way the app reads it."""
        response = requests.get(
            f"{self.simulator}/amber/v1/sites/{identity.AMBER_SITE_ID}/prices/current",
            params={"resolution": 5},
            headers={"Authorization": f"Bearer {identity.AMBER_TOKEN}"},
            timeout=5,
        )
        response.raise_for_status()
        current = [i for i in response.json() if i["type"] == "CurrentInterval" and i["channelType"] == "general"]
        assert len(current) == 1 and not current[0]["estimate"], current
        return current[0]["perKwh"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    skip_or_fail_without_browser()
    clock = FakeClock(START)
    sim_base, stop_simulator = start_simulator_thread(app=create_simulator_app(clock=clock))
    tmp = tmp_path_factory.mktemp("browser")
    config = make_config(tmp, f"sqlite:///{tmp / 'browser.db'}", **identity.app_settings(sim_base))
    app = create_app(config)
    app.extensions["clock"] = clock
    app.extensions["sleep"] = lambda seconds: clock.advance(seconds=seconds)
    with app.app_context():
        db.create_all()
    try:
        with serve(app) as base:
            yield Stack(app, base, sim_base, clock)
    finally:
        stop_simulator()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser(stack) -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


@contextmanager
def watched_context(browser, stack: Stack, state: dict[str, Any] | None, **options: Any) -> Iterator[Any]:
    """A browser context (signed in when `state` is given). Fails the test if, while it was open,
    the browser saw a console error, an uncaught exception, a failed request or an HTTP error."""
    context = browser.new_context(base_url=stack.base, storage_state=state, **options)
    context.set_default_timeout(TIMEOUT_MS)
    problems = BrowserProblems()
    problems.watch(context)
    try:
        yield context
    finally:
        context.close()
    seen = problems.take()
    assert not seen, "the browser saw errors:\n" + "\n".join(seen)


def _sign_up_and_configure(page: Any) -> dict[str, Any]:
    """Sign up as the first account and configure Amber, Tesla and sync on /settings; return the
    signed-in session (cookies) for the other contexts."""
    from playwright.sync_api import expect

    page.goto("/")
    expect(page).to_have_url(re.compile(r"/register$"))  # a new installation asks for its first account
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.locator("input[name=confirm]").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/settings$"))

    amber = page.locator("form[action$='/settings/amber']")
    amber.locator("input[name=token]").fill(identity.AMBER_TOKEN)
    amber.get_by_role("button", name="Save Amber settings").click()
    expect(page.locator(".flash-success")).to_have_text("Saved.")

    tesla = page.locator("form[action$='/settings/tesla']")
    tesla.locator("input[name=token]").fill(identity.TESLEMETRY_TOKEN)
    tesla.get_by_role("button", name="Save Tesla settings").click()
    expect(page.locator(".flash-success")).to_have_text("Saved.")

    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".flash-success")).to_have_count(2)  # Amber and Tesla both connected
    # One active Amber site and one Powerwall site: both were chosen without asking.
    expect(page.locator("form[action$='/settings/amber'] select[name=site_id]")).to_have_value(identity.AMBER_SITE_ID)
    expect(page.locator("form[action$='/settings/tesla'] select[name=site_id]")).to_have_value(str(identity.TESLA_ENERGY_SITE_ID))

    page.get_by_label("Keep my Powerwall's tariff in sync with Amber prices").check()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator(".flash-success")).to_have_text("Saved.")
    expect(page.get_by_label("Keep my Powerwall's tariff in sync with Amber prices")).to_be_checked()

    return page.context.storage_state()


@pytest.fixture(scope="module")
def signed_in_state(stack, browser) -> dict[str, Any]:
    """Sign up and configure through the pages like a new user, then run one tick; return the session."""
    with watched_context(browser, stack, None, viewport=DESKTOP) as context:
        state = _sign_up_and_configure(context.new_page())

    results = stack.tick()
    assert [r.outcome for r in results] == ["pushed"], results
    return state


@pytest.fixture()
def desktop(browser, stack, signed_in_state) -> Iterator[Any]:
    """A signed-in desktop context, 1280 x 900."""
    with watched_context(browser, stack, signed_in_state, viewport=DESKTOP) as context:
        yield context


@pytest.fixture()
def phone(browser, stack, signed_in_state) -> Iterator[Any]:
    """A signed-in phone context: 375 px wide, touch, mobile viewport rules."""
    with watched_context(browser, stack, signed_in_state, viewport=PHONE, is_mobile=True, has_touch=True) as context:
        yield context


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def shown_buy(page: Any) -> Any:
    return page.locator("#part-now [data-value=buy]")


def test_dashboard_shows_the_simulators_price_battery_and_forecast(stack, desktop):
    from playwright.sync_api import expect

    page = desktop.new_page()
    page.goto("/")
    expect(shown_buy(page)).to_have_text(f"{stack.amber_buy_now():.1f}c")
    soc = stack.powerwall()["percentage_charged"]
    expect(page.locator("#part-battery [data-value=soc]")).to_have_text(f"{soc:.0f}%")
    expect(page.locator("#part-forecast .tariff-slot")).to_have_count(48)
    expect(page.locator("#part-status .outcome")).to_have_text("Sent a new tariff to the Powerwall")
    local = stack.clock.current.astimezone(SYDNEY)
    expect(page.locator("[data-updated]")).to_have_text(local.strftime("%H:%M:%S"))
    screenshot(page, "desktop-dashboard")


def test_tariff_page_lists_48_half_hours(desktop):
    from playwright.sync_api import expect

    page = desktop.new_page()
    page.goto("/tariff")
    expect(page.locator("ol.slots > li.slot")).to_have_count(48)
    expect(page.locator("li.slot.current")).to_have_count(1)
    screenshot(page, "desktop-tariff")
    for name in ("settings", "history"):
        page.goto(PAGES[name])
        screenshot(page, f"desktop-{name}")


@pytest.mark.parametrize("name", list(PAGES))
def test_phone_layout_does_not_scroll_sideways(phone, name):
    page = phone.new_page()
    page.goto(PAGES[name])
    widths = overflowing(page)
    assert widths["clientWidth"] == PHONE["width"]
    assert widths["scrollWidth"] <= widths["clientWidth"], widths
    screenshot(page, f"phone-{name}")


DUPLICATE_IDS = """() => {
  const seen = {};
  // Flask-WTF gives every form's hidden CSRF field id=csrf_token; hidden fields are never labelled.
  for (const el of document.querySelectorAll('[id]:not(input[type=hidden])')) seen[el.id] = (seen[el.id] || 0) + 1;
  return Object.keys(seen).filter((id) => seen[id] > 1);
}"""
UNLABELLED_CONTROLS = """() => [...document.querySelectorAll(
    'input:not([type=hidden]):not([type=submit]):not([type=button]), select, textarea')]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
  .map((el) => `${el.closest('form') ? el.closest('form').getAttribute('action') : ''} ${el.name}`)"""


@pytest.mark.parametrize(
    "name",
    [
        "settings",
        "dashboard",
        "tariff",
        "history",
        "household",
        "notifications",
        "money",
    ],
)
def test_every_form_control_has_its_own_label(desktop, name):
    page = desktop.new_page()
    page.goto(PAGES[name])
    assert page.evaluate(UNLABELLED_CONTROLS) == []
    assert page.evaluate(DUPLICATE_IDS) == []


def test_keyboard_reaches_sync_now(desktop):
    page = desktop.new_page()
    page.goto("/")
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement && document.activeElement.textContent.trim()")
        if focused == "Sync now":
            break
    else:
        pytest.fail("Tab never reached the Sync now button")
    assert page.evaluate("() => document.activeElement.matches('form.sync-now button')")


def test_refresh_every_30_seconds_shows_the_new_price(stack, desktop):
    from playwright.sync_api import expect

    page = desktop.new_page()
    page.clock.install()  # the page's timers run on a clock the test moves: no waiting for 30 s
    page.goto("/")
    before = shown_buy(page).inner_text()
    # Move both clocks to the next interval with a different price and let the sync store it.
    for _ in range(6):
        stack.clock.advance(minutes=5)
        expected = f"{stack.amber_buy_now():.1f}c"
        if expected != before:
            break
    assert expected != before, "the simulator's price never changed"
    assert [r.outcome for r in stack.tick()] in (["pushed"], ["unchanged"])
    soc = stack.powerwall()["percentage_charged"]
    expect(shown_buy(page)).to_have_text(before)  # nothing changes by itself before the refresh

    with page.expect_response(lambda r: r.url.endswith("/api/dashboard")) as refreshed:
        page.clock.run_for(30_000)
    assert refreshed.value.status == 200
    expect(shown_buy(page)).to_have_text(expected)
    expect(page.locator("#part-battery [data-value=soc]")).to_have_text(f"{soc:.0f}%")
    local = stack.clock.current.astimezone(SYDNEY)
    expect(page.locator("[data-updated]")).to_have_text(local.strftime("%H:%M:%S"))


def test_sync_now_button_shows_the_result(stack, desktop):
    from playwright.sync_api import expect

    page = desktop.new_page()
    stack.clock.advance(seconds=90)  # one "Sync now" a minute; the last run was the tick
    page.goto("/")
    with page.expect_response(lambda r: r.url.endswith("/api/sync")) as synced:
        with page.expect_response(lambda r: r.url.endswith("/api/dashboard")):
            page.get_by_role("button", name="Sync now").click()
    assert synced.value.status == 200
    message = synced.value.json()["message"]
    assert message
    expect(page.locator("form.sync-now .sync-result")).to_have_text(message)
    expect(page.get_by_role("button", name="Sync now")).to_be_enabled()
    # The status part shows the run just made (its start on the site's clock).
    local = stack.clock.current.astimezone(SYDNEY)
    expect(page.locator("#part-status")).to_contain_text(f"{local:%H:%M} AEDT, just now")


def test_refresh_keeps_what_the_user_is_filling_in(desktop):
    from playwright.sync_api import expect

    page = desktop.new_page()
    page.clock.install()
    page.goto("/")
    page.locator("input[name=action][value=force_discharge]").check()
    minutes = page.locator("#control-custom")
    minutes.fill("45")
    page.evaluate("() => document.querySelector('#part-now h2').setAttribute('data-before-refresh', '')")
    page.clock.run_for(30_000)
    expect(page.locator("#part-now [data-before-refresh]")).to_have_count(0)  # the refresh has landed
    assert page.locator("input[name=action][value=force_discharge]").is_checked()
    assert minutes.input_value() == "45"
    assert page.evaluate("() => document.activeElement.id") == "control-custom"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_on_a_390_px_phone_the_header_is_one_bar_with_a_menu(browser, stack, signed_in_state, name):
    from playwright.sync_api import expect

    with watched_context(browser, stack, signed_in_state, viewport=PHONE_390, is_mobile=True, has_touch=True) as context:
        page = context.new_page()
        page.goto(PAGES[name])
        header = page.locator("header.site-header").bounding_box()
        assert header["height"] <= 64, header
        nav = page.locator("nav[aria-label=Main]")
        expect(nav).to_be_hidden()  # behind the Menu button
        menu = page.locator("details.site-menu > summary")
        assert menu.bounding_box()["height"] >= 44
        menu.click()
        expect(nav.get_by_role("link", name="History")).to_be_visible()
        widths = overflowing(page)
        assert widths["scrollWidth"] <= widths["clientWidth"], widths
        small = page.evaluate("""() => [...document.querySelectorAll('main button, main .button, main input[type=submit]')]
            .filter((el) => el.offsetParent !== null && !el.classList.contains('link-button'))
            .map((el) => [el.textContent.trim(), el.getBoundingClientRect().height])
            .filter(([, height]) => height < 44)""")
        assert small == [], small
        screenshot(page, f"phone390-{name}")


def test_on_a_desktop_the_menu_is_inline(desktop):
    from playwright.sync_api import expect

    page = desktop.new_page()
    page.goto("/")
    expect(page.locator("details.site-menu > summary")).to_be_hidden()
    expect(page.locator("nav[aria-label=Main]").get_by_role("link", name="History")).to_be_visible()


def test_money_page_draws_its_chart_and_the_csv_adds_up_to_it(stack, desktop):
    """After an import from the simulator, the Money page draws a bar per billing day with its numbers on
    hover, and the CSV it offers sums to the net the page shows."""
    from decimal import ROUND_HALF_UP, Decimal

    from playwright.sync_api import expect

    from app.models import Household
    from app.money.importer import import_household

    with stack.app.app_context():
        household = db.session.scalars(db.select(Household)).first()
        import_household(household, 5, stack.clock.current)
    page = desktop.new_page()
    page.goto(PAGES["money"])
    chart = page.locator("svg.money-chart")
    expect(chart).to_be_visible()
    days = page.locator("table.money-days tbody tr")
    expect(chart.locator("g.day")).to_have_count(days.count())
    assert days.count() >= 4
    assert "imports cost $" in chart.locator("g.day title").first.text_content()
    net_shown = Decimal(page.locator("#range-net").text_content().replace("$", "").replace(",", ""))
    response = page.request.get(page.get_by_role("link", name="Download CSV").get_attribute("href"))
    assert response.ok and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text())))
    total = sum(Decimal(r["cost_dollars"]) for r in rows).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert total == net_shown
    screenshot(page, "desktop-money")
