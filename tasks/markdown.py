r"""Text from a ticket (or any outside source) shown as markdown stays text.

The Prefect UI renders a form's description and an artifact as markdown. A ticket's
summary or rollback steps written as `[enter your code here](https://...)`, `![](...)`,
`| gate | passed |` or `<img ...>` would otherwise draw links, images, tables or HTML that
look like changeflow's own. `plain` escapes every ASCII punctuation character with a
backslash (CommonMark renders the character itself), which also breaks bare-URL and
e-mail autolinks (`https\://`, `www\.`, `a\@b`), and folds line breaks into spaces so
that a value stays in its table cell or line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from domain.models import GateResult

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_SPACE = re.compile(r"\s+")


def gates_table(gates: Iterable[GateResult]) -> list[str]:
    """The gate results as markdown table lines: gate, status, evidence source, reason."""
    return ["| gate | status | evidence from | reason |", "|---|---|---|---|",
            *(f"| {g.gate} | {g.status.value} | {g.source} | {plain(g.reason)} |"
              for g in gates)]


def gates_list(gates: Iterable[GateResult]) -> list[str]:
    """The gate results as a markdown list, which wraps where a table would not."""
    source = {"ticket": "from the ticket", "changeflow": "changeflow's evidence"}
    return [f"- **{g.gate}**: {g.status.value} ({source.get(g.source, g.source)}): "
            f"{plain(g.reason)}" for g in gates]


def plain(text: object, limit: int | None = None) -> str:
    """`text` as markdown that renders as exactly that text, on one line.

    Args:
        text: the value (converted with `str`).
        limit: cut to this many characters (before escaping), marking the cut with `...`.
    """
    value = _SPACE.sub(" ", str(text)).strip()
    if limit is not None and len(value) > limit:
        value = value[:limit].rstrip() + "..."
    return _PUNCTUATION.sub(r"\\\1", value)
