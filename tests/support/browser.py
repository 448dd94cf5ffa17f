"""Debian's headless Chromium driven by Playwright, for the browser tests.

Chromium is required, not optional: when it cannot be launched the tests fail (CI
installs it through `.ci/run`). Screenshots land in tests/output/ for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "output"
MIN_PNG_BYTES = 20_000


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium; failing to launch it raises, naming the fix."""
    playwright = sync_playwright().start()
    try:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                                  args=["--no-sandbox"])
        except Exception as exc:
            raise RuntimeError(
                f"cannot launch Chromium at {CHROMIUM}; the browser tests need it "
                f"(Debian: apt-get install chromium, which .ci/run does when {CHROMIUM} is "
                f"missing): {exc}") from exc
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()


@contextmanager
def new_page(browser: Browser, width: int = 1280, height: int = 900) -> Iterator[Page]:
    """A fresh page in its own context, closed afterwards."""
    context = browser.new_context(viewport={"width": width, "height": height})
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under tests/output/; returns its path."""
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > MIN_PNG_BYTES, f"{path} is suspiciously small"
    return path
