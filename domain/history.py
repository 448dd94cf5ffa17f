"""Reading a change's history: what its events say was decided."""

from __future__ import annotations

from collections.abc import Iterable

from domain.events import EventType
from domain.models import Approval, Category, ChangeEvent, ChangeRequest, Decision, GateResult


def approvals_of(events: Iterable[ChangeEvent]) -> list[Approval]:
    """Every recorded approval decision, in order, as the domain rules judge them."""
    return [Approval(role=e.payload["role"], person_id=e.payload["person_id"],
                     decision=Decision(e.payload["decision"]), at=e.at,
                     channel=e.payload.get("channel", "unknown"),
                     comment=e.payload.get("comment", ""),
                     fallback_reason=e.payload.get("fallback_reason"),
                     recorded_by=e.payload.get("recorded_by"))
            for e in events if e.type == EventType.APPROVAL_RECORDED]


def submitted_change(events: Iterable[ChangeEvent]) -> ChangeRequest | None:
    """The change as its `change_submitted` event recorded it, with any reclassification.

    This, not the ticket, is what was approved: a later edit of the ticket changes nothing.
    """
    change: ChangeRequest | None = None
    for e in events:
        if e.type == EventType.CHANGE_SUBMITTED:
            change = ChangeRequest.model_validate(e.payload["change"])
        elif e.type == EventType.CHANGE_RECLASSIFIED and change is not None:
            change = change.model_copy(update={"category": Category(e.payload["to"])})
    return change


def last_gates(events: Iterable[ChangeEvent]) -> list[GateResult] | None:
    """The results of the last recorded gate evaluation; None if there was none."""
    found = [e for e in events if e.type in (EventType.GATES_PASSED, EventType.GATES_BLOCKED)]
    return None if not found else [GateResult.model_validate(g)
                                   for g in found[-1].payload["gates"]]
