"""Chasing what emergency changes owe: who to remind, what to escalate (policy section 5).

`emergency-follow-up` runs this rule on a schedule. An open obligation coming due is a
reminder to its owners; one past its deadline, or refused by its owner, is an
escalation to the sign-off role (the CISO). Either is sent at most once per the
policy's repeat period for the same obligation, so the job can run as often as anyone
likes without sending the same notice twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Literal

from domain.emergency import ObligationStatus, obligation_status
from domain.lifecycle import ChangeRecord
from domain.models import Frozen, Roster
from domain.policy import Policy

Action = Literal["reminder", "escalation"]


class FollowUp(Frozen):
    """One notice the follow-up sends about one obligation."""

    change_id: str
    obligation: str
    action: Action
    status: ObligationStatus | Literal["refused"]
    due: datetime
    to: list[str]


def follow_ups(record: ChangeRecord, now: datetime, policy: Policy, roster: Roster,
               last_sent: Mapping[tuple[str, Action], datetime]) -> list[FollowUp]:
    """What to send about `record`'s obligations at `now`.

    Args:
        record: an emergency change's record, with its obligations.
        now: the current time (aware).
        policy: the emergency section's reminder and repeat periods, the sign-off role.
        roster: who holds the sign-off role (escalations go to them and the owners).
        last_sent: when the last reminder or escalation was sent, by (obligation, action).

    Returns:
        Reminders and escalations in obligation order; nothing for obligations that are
        done, not yet due soon, or already notified within the repeat period.
    """
    rules = policy.emergency
    soon, repeat = (timedelta(hours=rules.remind_before_hours),
                    timedelta(hours=rules.repeat_notice_hours))
    escalate_to = [p.id for p in roster.holding(rules.signoff_role)]
    found: list[FollowUp] = []
    for kind, obligation in record.obligations.items():
        if obligation.done:
            continue
        status: ObligationStatus | Literal["refused"] = (
            "refused" if obligation.outcome == "refused"
            else obligation_status(obligation, None, now, soon))
        if status in ("open", "met", "late"):
            continue
        action: Action = "reminder" if status == "due_soon" else "escalation"
        sent = last_sent.get((kind, action))
        if sent is not None and now - sent < repeat:
            continue
        to = obligation.owners + (escalate_to if action == "escalation" else [])
        found.append(FollowUp(change_id=record.change_id, obligation=kind, action=action,
                              status=status, due=obligation.due, to=list(dict.fromkeys(to))))
    return found
