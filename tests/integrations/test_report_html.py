"""The written report.html in a real headless Chromium: headings, charts, a screenshot.

Chromium is required, not optional: when it cannot be launched these tests fail (CI
installs it through `.ci/run`). Screenshots land in tests/output/ for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from reporting.files import write_report
from reporting.model import SECTIONS
from tests.integrations.test_report_files import make_report

CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parents[1] / "output"
MIN_PNG_BYTES = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module; failing to launch it fails the tests."""
    playwright = sync_playwright().start()
    try:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM,
                                                  args=["--no-sandbox"])
        except Exception as exc:
            raise RuntimeError(
                f"cannot launch Chromium at {CHROMIUM}; the report's browser tests need it "
                f"(Debian: apt-get install chromium, which .ci/run does when {CHROMIUM} is "
                f"missing): {exc}") from exc
        try:
            yield launched
        finally:
            launched.close()
    finally:
        playwright.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own context, closed after the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str) -> Path:
    OUTPUT.mkdir(exist_ok=True)
    path = OUTPUT / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > MIN_PNG_BYTES, f"{path} is suspiciously small"
    return path


def open_report(page: Page, out_dir: Path, *, empty: bool) -> None:
    """Write the report and open its report.html; it must fetch nothing but itself."""
    html = write_report(make_report(empty=empty), out_dir)["report.html"]
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(html.as_uri())
    assert requested == [html.as_uri()]


def test_report_renders_headings_and_charts(page: Page, tmp_path: Path) -> None:
    open_report(page, tmp_path, empty=False)
    expect(page.get_by_role("heading", level=1)).to_have_text("Change management report 2026Q3")
    for section in SECTIONS:
        expect(page.get_by_role("heading", name=section, exact=True, level=2)).to_be_visible()
    charts = page.locator("figure svg")
    assert charts.count() == 3
    for i in range(3):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 50, box
    screenshot(page, "report-2026Q3.png")


def test_empty_report_renders_headings_and_says_so(page: Page, tmp_path: Path) -> None:
    open_report(page, tmp_path, empty=True)
    for section in SECTIONS:
        expect(page.get_by_role("heading", name=section, exact=True, level=2)).to_be_visible()
    expect(page.get_by_text("No changes in 2026Q3.").first).to_be_visible()
    assert page.locator("svg").count() == 0
    screenshot(page, "report-2026Q3-empty.png")
