"""The written report.html in a real headless Chromium: headings, charts, a screenshot.

Chromium is required: when it cannot be launched these tests fail (tests/support/browser).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from reporting.files import write_report
from reporting.model import SECTIONS
from tests.integrations.test_report_files import make_report
from tests.support.browser import chromium, new_page, screenshot


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own context, closed after the test."""
    with new_page(browser) as opened:
        yield opened


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
