"""Plain-text views of the change log for the terminal."""

from __future__ import annotations

from collections.abc import Sequence

from domain.lifecycle import ChangeRecord

HEADER = ("CHANGE", "CATEGORY", "STATE", "OUTCOME", "INCIDENTS", "SUMMARY")


def print_changes(records: Sequence[ChangeRecord], indent: str = "") -> None:
    """Print one aligned row per change: id, category, state, outcome, incidents, summary."""
    if not records:
        print(f"{indent}no changes in the change log")
        return
    rows = [(r.change_id, r.category.value if r.category else "-", r.state, r.outcome or "-",
             ",".join(r.incidents) or "-", r.summary[:50]) for r in records]
    widths = [max(len(row[i]) for row in [HEADER, *rows]) for i in range(len(HEADER))]
    for row in [HEADER, *rows]:
        print(indent + "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
