"""Reading a change's history: what its events say was decided."""

from __future__ import annotations

from collections.abc import Iterable

from domain.models import Approval, ChangeEvent, Decision


def approvals_of(events: Iterable[ChangeEvent]) -> list[Approval]:
    """Every recorded approval decision, in order, as the domain rules judge them."""
    return [Approval(role=e.payload["role"], person_id=e.payload["person_id"],
                     decision=Decision(e.payload["decision"]), at=e.at,
                     channel=e.payload.get("channel", "unknown"),
                     comment=e.payload.get("comment", ""),
                     fallback_reason=e.payload.get("fallback_reason"),
                     recorded_by=e.payload.get("recorded_by"))
            for e in events if e.type == "approval_recorded"]
