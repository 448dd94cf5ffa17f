"""Policy section 5, steps 3 to 5: what an emergency change owes after it is deployed.

Obligations are opened when the deployment starts, each with its deadline and owners,
and are met only by an attributable answer of an owner (`emergency-obligation`).
`emergency-follow-up` reminds and escalates; every notice it sends is recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.emergency import emergency_obligations
from domain.events import EventType, FollowUpSent, TicketSnapshot, payload_of
from domain.follow_up import Action, FollowUp, follow_ups
from domain.intake import validate_ticket
from domain.lifecycle import ChangeRecord, ObligationRecord
from domain.models import Category, ChangeRequest, Notice
from integrations.factory import Adapters
from tasks.common import ChangeStopped, events_of, last_of, record, step
from tasks.notices import notify
from tasks.tickets import tell

WHAT = {
    "approval_confirmation": "confirm (or dispute) the verbal approval recorded in your name",
    "documentation": "complete the emergency change log entry (every field of a normal change)",
    "post_hoc_review": "hold the post-hoc review and record its findings",
    "ciso_signoff": "sign off the change record retroactively",
}
"""What each obligation asks of its owners, for notices and forms."""

NEEDS_COMMENT = {"post_hoc_review": "the review's findings",
                 "ciso_signoff": "the sign-off's basis"}
"""Obligations whose answer must say something, and what."""


def owners(a: Adapters, change: ChangeRequest, role: str) -> list[str]:
    """Who owes an obligation of `role`.

    The author owes the engineer's; anyone else's is owed by the role's holders other
    than the author (nobody reviews or signs off their own change).
    """
    if role == "engineer":
        return [change.author]
    return [p.id for p in a.config.roster.holding(role) if not change.by(p.id)]


@step("open-obligations")
def open_obligations(a: Adapters, change: ChangeRequest) -> list[str]:
    """Open documentation, review and sign-off, dated from the deployment; once per change."""
    started = last_of(a, change, EventType.DEPLOYMENT_STARTED)
    record_now = a.change_log.record(change.id)
    if change.category is not Category.EMERGENCY or started is None or record_now is None:
        return []
    opened: list[str] = []
    for obligation in emergency_obligations(started.at, a.config.policy):
        if obligation.kind in record_now.obligations:
            continue
        people = owners(a, change, obligation.owner_role)
        record(a, change.id, EventType.OBLIGATION_OPENED, obligation=obligation.kind,
               due=obligation.due.isoformat(), owner_role=obligation.owner_role, owners=people)
        notify(a, people, Notice(
            to="", kind="obligation", change_id=change.id,
            subject=f"{change.id}: {obligation.kind.replace('_', ' ')} due "
                    f"{obligation.due:%Y-%m-%d %H:%M} UTC",
            body=f"Emergency change {change.id} ({change.summary}) was deployed. "
                 f"Please {WHAT[obligation.kind]}: run emergency-obligation for "
                 f"{change.id} with obligation {obligation.kind}."))
        opened.append(obligation.kind)
    return opened


@step("check-obligation")
def check_obligation(a: Adapters, change: ChangeRequest, kind: str) -> ObligationRecord:
    """The open obligation, if it may be answered now; else say why not.

    Documentation is complete only when the ticket has every field a normal change has;
    the completed entry is recorded as a snapshot before the author confirms it. The
    sign-off files the record, so it waits for the documentation and the review.

    Raises:
        ChangeStopped: no such open obligation, or it cannot be answered yet.
    """
    current = a.change_log.record(change.id)
    obligation = current.obligations.get(kind) if current else None
    if current is None or obligation is None:
        raise ChangeStopped(f"{change.id} has no {kind} obligation (only deployed emergency "
                            "changes have obligations)")
    if obligation.done:
        raise ChangeStopped(f"{change.id}: {kind} was already done by {obligation.closed_by} "
                            f"at {obligation.closed_at}")
    if kind == "documentation":
        _snapshot_documentation(a, change)
    if kind == "ciso_signoff":
        missing = [k for k in ("documentation", "post_hoc_review")
                   if k in current.obligations and not current.obligations[k].done]
        if missing:
            raise ChangeStopped(f"{change.id}: the sign-off files the complete record; "
                                f"first: {', '.join(missing)}")
    return obligation


def _snapshot_documentation(a: Adapters, change: ChangeRequest) -> None:
    cfg = a.config
    checked = validate_ticket(a.tickets.get(change.id), cfg.policy, cfg.roster, cfg.services,
                              complete=True)
    if isinstance(checked, list):
        tell(a, change.id, "The emergency change log entry is not complete "
             "yet. Fill in:\n- " + "\n- ".join(checked))
        raise ChangeStopped(f"{change.id}: documentation incomplete: " + "; ".join(checked))
    entry = checked.model_dump(mode="json")
    previous = last_of(a, change, EventType.TICKET_SNAPSHOT)
    if previous is None or payload_of(previous, TicketSnapshot).change != entry:  # resumed
        record(a, change.id, EventType.TICKET_SNAPSHOT, purpose="documentation", change=entry)


@step("escalate-refusal")
def escalate_refusal(a: Adapters, change: ChangeRequest, kind: str, by: str,
                     comment: str) -> None:
    """An owner refused (disputed the approval, refused the sign-off): tell the CISO now."""
    to = [p.id for p in a.config.roster.holding(a.config.policy.emergency.signoff_role)]
    _send(a, FollowUp(change_id=change.id, obligation=kind, action="escalation",
                      status="refused", due=a.now(), to=to),
          f"{by} refused {kind.replace('_', ' ')}: {comment or 'no reason given'}")


def _send(a: Adapters, item: FollowUp, detail: str) -> None:
    event = EventType.REMINDER_SENT if item.action == "reminder" else EventType.ESCALATED
    what = item.obligation.replace("_", " ")
    notify(a, item.to, Notice(
        to="", kind=item.action, change_id=item.change_id,
        subject=f"{item.change_id}: {what} {item.status.replace('_', ' ')} "
                f"(due {item.due:%Y-%m-%d %H:%M} UTC)",
        body=f"{detail}\nTo close it: {WHAT[item.obligation]} (emergency-obligation for "
             f"{item.change_id}, obligation {item.obligation})."))
    record(a, item.change_id, event, obligation=item.obligation, status=item.status,
           due=item.due.isoformat(), to=item.to, detail=detail)


def _last_sent(a: Adapters, change_id: str) -> dict[tuple[str, Action], datetime]:
    sent: dict[tuple[str, Action], datetime] = {}
    for event in events_of(a, change_id, EventType.REMINDER_SENT, EventType.ESCALATED):
        action: Action = "reminder" if event.type == EventType.REMINDER_SENT else "escalation"
        sent[(payload_of(event, FollowUpSent).obligation, action)] = event.at
    return sent


@step("follow-up-change")
def follow_up_change(a: Adapters, rec: ChangeRecord) -> list[dict[str, Any]]:
    """Send and record the reminders and escalations one emergency change is due."""
    cfg = a.config
    sent = []
    for item in follow_ups(rec, a.now(), cfg.policy, cfg.roster, _last_sent(a, rec.change_id)):
        detail = (f"Emergency change {rec.change_id} ({rec.summary}): "
                  f"{item.obligation.replace('_', ' ')} is {item.status.replace('_', ' ')}.")
        _send(a, item, detail)
        sent.append(item.model_dump(mode="json"))
    return sent
