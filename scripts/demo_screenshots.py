"""Take the README's screenshots from the demo in a real browser: docs/dashboard.png and docs/money.png.

Runs the demo's app and simulator in this process (nothing real is called), signs in as the demo account
in Debian's Chromium and saves the pages at 1280 px wide. Usage: .venv/bin/python scripts/demo_screenshots.py"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.demo import DEMO_EMAIL, DEMO_PASSWORD, demo_config, prepare_demo  # noqa: E402
from app.simulator.server import create_simulator_app, start_simulator_thread  # noqa: E402
from tests.browser_support import launch_chromium, serve  # noqa: E402


def main() -> None:
    sim_base, stop = start_simulator_thread(app=create_simulator_app())
    try:
        app = create_app(demo_config(sim_base, Path(tempfile.mkdtemp()), "127.0.0.1", 5001))
        prepare_demo(app)
        with serve(app) as base, launch_chromium() as chromium:
            page = chromium.new_page(base_url=base, viewport={"width": 1280, "height": 900})
            page.goto("/login")
            page.get_by_label("Email").fill(DEMO_EMAIL)
            page.get_by_label("Password").fill(DEMO_PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/")
            for path, name, height in (("/", "dashboard", 1500), ("/money", "money", 1000)):
                page.set_viewport_size({"width": 1280, "height": height})
                page.goto(path)
                target = ROOT / "docs" / f"{name}.png"
                page.screenshot(path=str(target), full_page=False)
                print(f"wrote {target.relative_to(ROOT)}")
    finally:
        stop()


if __name__ == "__main__":
    main()
