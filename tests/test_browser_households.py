"""The invitation flow in a real browser: an owner invites a partner as operator, the partner opens the link,
creates an account (sign-up is closed) and lands in the shared household, where the owner sees them."""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from app import create_app
from app.extensions import db
from tests.browser_support import DESKTOP, PHONE, BrowserProblems, launch_chromium, serve, skip_or_fail_without_browser
from tests.conftest import make_config

pytestmark = pytest.mark.browser
OWNER, PARTNER, PASSWORD = "owner@example.com", "partner@example.com", "correct horse battery"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[str]:
    skip_or_fail_without_browser()
    tmp = tmp_path_factory.mktemp("browser-households")
    app = create_app(make_config(tmp, f"sqlite:///{tmp / 'households.db'}", REGISTRATION="first-user"))
    with app.app_context():
        db.create_all()
    try:
        with serve(app) as base:
            yield base
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser(site) -> Iterator[Any]:
    with launch_chromium() as chromium:
        yield chromium


def new_context(browser, site, **options):
    context = browser.new_context(base_url=site, **options)
    context.set_default_timeout(TIMEOUT_MS)
    problems = BrowserProblems()
    problems.watch(context)
    return context, problems


def test_an_owner_invites_a_partner_who_signs_up_and_joins(browser, site):
    from playwright.sync_api import expect

    owner, owner_problems = new_context(browser, site, viewport=DESKTOP)
    page = owner.new_page()
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/register$"))
    page.get_by_label("Email").fill(OWNER)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.locator("input[name=confirm]").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/settings$"))

    page.get_by_role("link", name="Household").click()
    page.get_by_label("Their email").fill(PARTNER)
    page.get_by_label("Role", exact=True).select_option("operator")
    page.get_by_role("button", name="Create invitation link").click()
    link = page.get_by_label("Invitation link").input_value()
    assert re.fullmatch(re.escape(site) + r"/invite/[A-Za-z0-9_-]{40,}", link), link
    expect(page.locator(".pending-invitations")).to_contain_text(f"{PARTNER} as operator")

    # The partner, on a phone, opens the link: sign-up is closed to everyone else after the first account.
    partner, partner_problems = new_context(browser, site, viewport=PHONE, is_mobile=True, has_touch=True)
    phone = partner.new_page()
    phone.goto(link)
    expect(phone.locator("main")).to_contain_text(f"{OWNER} invites {PARTNER}")
    phone.get_by_role("link", name="Create your account and join").click()
    phone.get_by_label("Password", exact=True).fill(PASSWORD)
    phone.get_by_label("Repeat password").fill(PASSWORD)
    phone.get_by_role("button", name="Create account and join").click()
    expect(phone).to_have_url(re.compile(r"/$"))
    expect(phone.locator(".flash-success")).to_contain_text("You joined owner@example.com's household as operator")
    expect(phone.locator("#part-control form[action$='/control']")).to_have_count(1)  # an operator may force
    expect(phone.locator("nav a[href$='/settings']")).to_have_count(0)  # but not open the settings

    page.reload()
    expect(page.locator("table.members")).to_contain_text(PARTNER)
    expect(page.locator(".pending-invitations")).to_have_count(0)

    for context, problems in ((owner, owner_problems), (partner, partner_problems)):
        context.close()
        assert not problems.take(), "the browser saw errors"
