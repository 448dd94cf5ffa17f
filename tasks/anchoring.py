"""Checking the change log against its anchors, and publishing a new one (section 7)."""

from __future__ import annotations

from dataclasses import dataclass

from integrations.anchors import Anchor, AnchorError, FileAnchors, signed_anchor
from integrations.changelog_sql import SqlChangeLog


@dataclass(frozen=True)
class AnchorCheck:
    """The outcome of checking kept heads against the chain.

    Attributes:
        checked: how many anchors (or expected heads) were checked.
        problem: the first one the chain no longer holds, named; None if all hold.
    """

    checked: int
    problem: str | None = None


def check_heads(log: SqlChangeLog, heads: list[tuple[str, int, str]]) -> AnchorCheck:
    """Check (where, seq, hash) heads in order; stop at the first the chain does not hold."""
    for n, (where, seq, hash_) in enumerate(heads):
        problem = log.anchor_problem(seq, hash_)
        if problem is not None:
            return AnchorCheck(n, f"{where} (event {seq}) is no longer held: {problem}")
    return AnchorCheck(len(heads))


def check_anchors(log: SqlChangeLog, anchors: FileAnchors) -> AnchorCheck:
    """Check every anchor in the file: its signature, and that the chain still holds it."""
    try:
        kept = anchors.read(log.keys.public_keys())
    except AnchorError as exc:
        return AnchorCheck(0, str(exc))
    return check_heads(log, [(f"anchor {n} in {anchors.path}", a.seq, a.hash)
                             for n, a in enumerate(kept, 1)])


def publish_head(log: SqlChangeLog, anchors: FileAnchors) -> Anchor:
    """Sign the chain's head and append it to the anchor file."""
    anchor = signed_anchor(log.keys, *log.head_with_time())
    anchors.publish(anchor)
    return anchor
