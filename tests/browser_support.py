"""Support for the browser tests: find Chromium and Playwright (skip, or fail under REQUIRE_BROWSER=1),
serve a Flask app over loopback from a thread, and collect what goes wrong inside the browser."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from app.simulator.server import QuietRequestHandler

CHROMIUM = "/usr/bin/chromium"
# Headless in a container: no sandbox (no user namespaces), no GPU, and no calls home that could
# slow a test down or fail it on a machine without internet access.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 800}


def browser_required() -> bool:
    """CI sets REQUIRE_BROWSER=1: a missing browser is then a failure, not a skip."""
    return os.environ.get("REQUIRE_BROWSER", "").strip() == "1"


def missing_browser_reason() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r requirements-dev.txt)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


def skip_or_fail_without_browser() -> None:
    """Skip with the reason, or fail with it when the browser is required."""
    reason = missing_browser_reason()
    if reason is None:
        return
    if browser_required():
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@contextmanager
def launch_chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright (the one way the browser tests start a browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` on an ephemeral loopback port in a daemon thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
        server.server_close()


@dataclass
class BrowserProblems:
    """Console errors, uncaught exceptions, failed requests and HTTP errors seen by a browser context."""

    seen: list[str] = field(default_factory=list)

    def watch(self, context: Any) -> None:
        context.on("console", self._console)
        context.on("weberror", lambda error: self.seen.append(f"uncaught: {error.error}"))
        context.on("requestfailed", lambda request: self.seen.append(f"request failed: {request.method} {request.url} ({request.failure})"))
        context.on("response", self._response)

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.seen.append(f"console error: {message.text} at {message.location}")

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.seen.append(f"HTTP {response.status}: {response.request.method} {response.url}")

    def take(self) -> list[str]:
        """What was seen since the last call."""
        seen, self.seen = self.seen, []
        return seen


def overflowing(page: Any) -> dict[str, Any]:
    """The page's scroll and client widths, and the widest elements that stick out to the right."""
    return page.evaluate(
        """() => {
          const root = document.documentElement, limit = root.clientWidth;
          const culprits = [];
          for (const el of document.body.querySelectorAll('*')) {
            const box = el.getBoundingClientRect();
            if (box.right > limit + 0.5 && box.width > 0) {
              culprits.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : ''} right=${Math.round(box.right)}`);
            }
          }
          return {scrollWidth: root.scrollWidth, clientWidth: limit, culprits: culprits.slice(0, 8)};
        }"""
    )

