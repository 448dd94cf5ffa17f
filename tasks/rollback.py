"""Policy section 4: the catalog's rollback, its verification, and the incident it opens."""

from __future__ import annotations

import time

from domain.calendar import add_business_days
from domain.events import EventType, IncidentOpened, TicketUpdated, payload_of
from domain.models import ChangeRequest, Notice
from integrations.factory import Adapters
from tasks.commands import environment, run_checks, run_command
from tasks.common import events_of, record, step
from tasks.notices import notify
from tasks.tickets import file_incident


@step("roll-back")
def roll_back(a: Adapters, change: ChangeRequest, previous: str, reason: str,
              resume: bool = False) -> bool:
    """Run the service's rollback to `previous` and verify it; record time beside estimate.

    With `resume`, a rollback was started by a run that did not finish: run it again (a
    redeploy of the previous version is safe to repeat) without recording a second start.
    """
    spec = environment(a, change, "production")
    started = time.monotonic()
    if not resume:
        record(a, change.id, EventType.ROLLBACK_STARTED, to_version=previous, reason=reason)
    done = run_command(a, change, "rollback-production", spec.rollback,
                       environment="production", previous_version=previous)
    checks = run_checks(a, spec, previous) if done.ok else []
    ok = done.ok and bool(checks) and all(c.passed for c in checks)
    minutes = round((time.monotonic() - started) / 60, 3)
    record(a, change.id, EventType.ROLLBACK_SUCCEEDED if ok else EventType.ROLLBACK_FAILED,
           to_version=previous, minutes=minutes,
           estimate_minutes=change.rollback_plan.time_estimate_minutes,
           exit_code=done.exit_code, checks=[c.model_dump(mode="json") for c in checks])
    return ok


@step("open-incident")
def open_incident(a: Adapters, change: ChangeRequest, rollback_ok: bool) -> str:
    """Open the incident an executed rollback is (P3 or worse; P1 if the rollback failed).

    Notifies the rollback owner, and on-call too when the rollback failed. Opened once per
    change: a run that starts again finds it.
    """
    existing = events_of(a, change, EventType.INCIDENT_OPENED)
    if existing:
        known = payload_of(existing[-1], IncidentOpened)
        _file(a, change, known.incident_id, known.summary, known.priority)
        return known.incident_id
    policy = a.config.policy
    priority = policy.rollback.incident_priority if rollback_ok else 1
    opened = a.now()
    due = add_business_days(opened, policy.rollback.post_incident_review_business_days,
                            policy.schedule.holidays, policy.schedule.zone)
    incident = f"INC-{change.id}-1"
    what = "rolled back" if rollback_ok else "ROLLBACK FAILED"
    record(a, change.id, EventType.INCIDENT_OPENED, incident_id=incident, priority=priority,
           summary=f"{change.id} {what} after a failed verification",
           review_due=due.isoformat(), linked_change=change.id)
    owner = change.rollback_plan.owner or change.author
    paged = [owner] + ([] if rollback_ok else [p.id for p in a.config.roster.holding("on_call")])
    notify(a, paged, Notice(
        to="", change_id=change.id, kind="incident" if rollback_ok else "page",
        link=a.tickets.web_url(change.id),
        subject=f"P{priority} {incident}: {change.id} {what}",
        body=f"{change.summary}\nPost-incident review due {due:%Y-%m-%d}."))
    record(a, change.id, EventType.NOTIFICATION_SENT, to=list(dict.fromkeys(paged)), about=incident)
    _file(a, change, incident, f"{change.id} {what} after a failed verification", priority)
    return incident


def _file(a: Adapters, change: ChangeRequest, incident: str, summary: str,
          priority: int) -> None:
    """The incident in the ticket system, linked to the change, recorded; once."""
    filed = [e for e in events_of(a, change, EventType.TICKET_UPDATED)
             if payload_of(e, TicketUpdated).incident_id == incident]
    if filed:
        return
    key = file_incident(a, change.id, incident, summary, priority)
    record(a, change.id, EventType.TICKET_UPDATED, incident_id=incident, incident_key=key)
