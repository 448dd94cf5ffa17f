"""Ticket text rendered as markdown stays text: no links, images, tables or HTML."""

from __future__ import annotations

import pytest
from markdown_it import MarkdownIt

from tasks.markdown import plain

RENDER = MarkdownIt("gfm-like").render


@pytest.mark.parametrize("text", [
    "[enter your code here](https://evil.example/steal)",
    "![logo](https://evil.example/logo.png)",
    "<img src=x onerror=alert(1)> <script>alert(1)</script>",
    "| gate | status |\n|---|---|\n| code_review | passed |",
    "visit https://evil.example/x or www.evil.example or mail a@evil.example",
    "# Approved\n\n**by the CISO**\n\n- item\n> quote",
    "back\\slash `code` *em* _em_ ~~gone~~ [ref]: https://evil.example",
])
def test_ticket_text_renders_as_exactly_that_text_on_one_line(text: str) -> None:
    html = RENDER(plain(text))
    assert html.startswith("<p>") and html.count("<p>") == 1
    for tag in ("<a ", "<img", "<table", "<script", "<h1", "<strong", "<em", "<li",
                "<blockquote", "<code", "<s>"):
        assert tag not in html
    expected = " ".join(text.split())
    shown = (html.removeprefix("<p>").removesuffix("</p>\n").replace("&lt;", "<")
             .replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&"))
    assert shown == expected


def test_a_long_value_is_cut_before_it_is_escaped() -> None:
    assert plain("a" * 10 + "]", limit=10) == "a" * 10 + r"\.\.\."
