"""Checking the change log against its anchors, and publishing a new one (section 7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from integrations.anchors import Anchor, AnchorError, signed_anchor
from integrations.ports import Anchors, ChangeLog


@dataclass(frozen=True)
class AnchorCheck:
    """The outcome of checking kept heads against the chain.

    Attributes:
        checked: how many anchors (or expected heads) were checked.
        problem: the first one the chain no longer holds, named; None if all hold.
    """

    checked: int
    problem: str | None = None


def check_heads(log: ChangeLog, heads: list[tuple[str, int, str]]) -> AnchorCheck:
    """Check (where, seq, hash) heads in order; stop at the first the chain does not hold."""
    for n, (where, seq, hash_) in enumerate(heads):
        problem = log.anchor_problem(seq, hash_)
        if problem is not None:
            return AnchorCheck(n, f"{where} (event {seq}) is no longer held: {problem}")
    return AnchorCheck(len(heads))


def check_anchors(log: ChangeLog, targets: Sequence[Anchors]) -> AnchorCheck:
    """Check every anchor in every target: its signature, and that the chain still holds it."""
    checked = 0
    for target in targets:
        try:
            kept = target.read(log.keys.public_keys())
        except AnchorError as exc:
            return AnchorCheck(checked, str(exc))
        found = check_heads(log, [(f"anchor {n} in {target.where}", a.seq, a.hash)
                                  for n, a in enumerate(kept, 1)])
        checked += found.checked
        if found.problem is not None:
            return AnchorCheck(checked, found.problem)
    return AnchorCheck(checked)


def publish_head(log: ChangeLog, targets: Sequence[Anchors]) -> Anchor:
    """Sign the chain's head and keep it in every target.

    Raises:
        AnchorError: a target refused it; the message says which targets hold it already.
    """
    anchor = signed_anchor(log.keys, *log.head_with_time())
    kept: list[str] = []
    for target in targets:
        try:
            target.publish(anchor)
        except AnchorError as exc:
            raise AnchorError(f"{exc} (event {anchor.seq} is anchored in: "
                              f"{', '.join(kept) or 'no target'})") from None
        kept.append(target.where)
    return anchor
