"""The first hour, in a real browser against `flask demo`'s app: every page answers 200 with no console
error, the tariff and Money pages draw their charts, the history covers the simulated week, and on a
390 px phone the header is one bar. (The demo's own server is werkzeug's; here the same app is served
from a thread, after the same `prepare_demo` that `flask demo` runs.)"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import create_app
from app.demo import DEMO_EMAIL, DEMO_PASSWORD, demo_config, prepare_demo
from app.extensions import db
from app.simulator.server import create_simulator_app, start_simulator_thread
from tests.browser_support import DESKTOP, BrowserProblems, launch_chromium, overflowing, serve, skip_or_fail_without_browser

pytestmark = pytest.mark.browser
TIMEOUT_MS = 10_000
PAGES = ["/", "/tariff", "/history", "/history?kind=pushes", "/history?kind=force", "/money", "/household",
         "/settings", "/settings/notifications", "/account/password"]
PHONE_390 = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[str]:
    skip_or_fail_without_browser()
    sim_base, stop = start_simulator_thread(app=create_simulator_app())
    app = create_app(demo_config(sim_base, tmp_path_factory.mktemp("demo"), "127.0.0.1", 5001))
    try:
        prepare_demo(app)
        with serve(app) as base:
            yield base
    finally:
        stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser(demo) -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


def signed_in(browser, base: str, **options: Any):
    context = browser.new_context(base_url=base, **options)
    context.set_default_timeout(TIMEOUT_MS)
    problems = BrowserProblems()
    problems.watch(context)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(DEMO_EMAIL)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base}/")
    return context, page, problems


def test_every_page_of_the_demo_answers_without_an_error_and_draws_its_charts(browser, demo):
    from playwright.sync_api import expect

    context, page, problems = signed_in(browser, demo, viewport=DESKTOP)
    try:
        for path in PAGES:
            response = page.goto(path)
            assert response is not None and response.status == 200, path
        page.goto("/tariff")
        expect(page.locator("svg.tariff-chart")).to_be_visible()
        page.goto("/money")
        chart = page.locator("svg.money-chart")
        expect(chart).to_be_visible()
        assert chart.locator("g.day").count() >= 7  # the week the demo lived
        expect(page.locator("table.money-windows")).to_contain_text("Force charge")
        page.goto("/")
        expect(page.locator("#part-forecast svg .level").first).to_be_attached()  # Amber's levels, as colour and word
        history = page.request.get("/api/history?days=7").json()
        days = {push["at"][:10] for push in history["pushes"]}
        assert len(days) >= 5, days
    finally:
        context.close()
    assert problems.take() == []


def test_on_a_phone_the_demo_header_is_one_bar_and_nothing_scrolls_sideways(browser, demo):
    context, page, problems = signed_in(browser, demo, viewport=PHONE_390, is_mobile=True, has_touch=True)
    try:
        for path in ("/", "/money", "/tariff", "/history"):
            page.goto(path)
            header = page.locator("header.site-header").bounding_box()
            assert header["height"] <= 64, (path, header)
            widths = overflowing(page)
            assert widths["scrollWidth"] <= widths["clientWidth"], (path, widths)
    finally:
        context.close()
    assert problems.take() == []
