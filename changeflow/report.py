"""Plain-text views of the change log for the terminal."""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from domain.emergency import obligation_status
from domain.lifecycle import ChangeRecord

HEADER = ("CHANGE", "CATEGORY", "STATE", "OUTCOME", "INCIDENTS", "SUMMARY")


OBLIGATION_HEADER = ("CHANGE", "OBLIGATION", "DUE (UTC)", "STATUS", "OWNERS", "DONE BY")


def printable(text: str) -> str:
    r"""`text` safe for a terminal: control, format and bidirectional characters escaped.

    A ticket's ANSI escape, NUL or right-to-left override is shown as `\x1b`, `\x00`,
    `\u202e`, never acted on by the terminal.
    """
    return "".join(c if unicodedata.category(c)[0] != "C" else
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
                   for c in text)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]], indent: str) -> None:
    rows = [tuple(printable(v) for v in row) for row in rows]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(indent + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def print_changes(records: Sequence[ChangeRecord], indent: str = "") -> None:
    """Print one aligned row per change: id, category, state, outcome, incidents, summary."""
    if not records:
        print(f"{indent}no changes in the change log")
        return
    _table(HEADER, [(r.change_id, r.category.value if r.category else "-", r.state,
                     r.outcome or "-", ",".join(r.incidents) or "-", r.summary[:50])
                    for r in records], indent)


def obligation_rows(records: Sequence[ChangeRecord], now: datetime, soon: timedelta,
                    everything: bool = False) -> list[dict[str, Any]]:
    """Emergency obligations with their status at `now`; only unfinished unless `everything`.

    Status is `open`, `due_soon`, `overdue` or `refused` while unfinished, `met` or
    `late` once done.
    """
    rows = []
    for rec in records:
        for kind, item in rec.obligations.items():
            if item.done and not everything:
                continue
            status = ("refused" if item.outcome == "refused"
                      else obligation_status(item, item.closed_at, now, soon))
            rows.append({"change_id": rec.change_id, "obligation": kind,
                         "due": item.due.isoformat(), "status": status, "owners": item.owners,
                         "closed_by": item.closed_by, "closed_at":
                         item.closed_at.isoformat() if item.closed_at else None})
    return rows


def print_obligations(rows: Sequence[dict[str, Any]], indent: str = "") -> None:
    """Print one aligned row per emergency obligation."""
    if not rows:
        print(f"{indent}no open emergency obligations")
        return
    _table(OBLIGATION_HEADER, [(r["change_id"], r["obligation"], r["due"][:16], r["status"],
                                ",".join(r["owners"]), r["closed_by"] or "-") for r in rows],
           indent)
