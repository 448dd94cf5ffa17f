"""Reading a change's history: what its events say was decided."""

from __future__ import annotations

from collections.abc import Iterable

from domain.events import (
    ChangeReclassified,
    ChangeSubmitted,
    Decided,
    EventType,
    GatesJudged,
    payload_of,
)
from domain.models import Approval, ChangeEvent, ChangeRequest, GateResult


def approvals_of(events: Iterable[ChangeEvent]) -> list[Approval]:
    """Every recorded approval decision, in order, as the domain rules judge them."""
    found = []
    for e in events:
        if e.type == EventType.APPROVAL_RECORDED:
            d = payload_of(e, Decided)
            found.append(Approval(role=d.role, person_id=d.person_id, decision=d.decision,
                                  at=e.at, channel=d.channel, comment=d.comment,
                                  fallback_reason=d.fallback_reason,
                                  recorded_by=d.recorded_by))
    return found


def submitted_change(events: Iterable[ChangeEvent]) -> ChangeRequest | None:
    """The change as its `change_submitted` event recorded it, with any reclassification.

    This, not the ticket, is what was approved: a later edit of the ticket changes nothing.
    """
    change: ChangeRequest | None = None
    for e in events:
        if e.type == EventType.CHANGE_SUBMITTED:
            change = payload_of(e, ChangeSubmitted).change
        elif e.type == EventType.CHANGE_RECLASSIFIED and change is not None:
            change = change.model_copy(update={"category": payload_of(e, ChangeReclassified).to})
    return change


def last_gates(events: Iterable[ChangeEvent]) -> list[GateResult] | None:
    """The results of the last recorded gate evaluation; None if there was none."""
    found = [e for e in events if e.type in (EventType.GATES_PASSED, EventType.GATES_BLOCKED)]
    return None if not found else payload_of(found[-1], GatesJudged).gates
