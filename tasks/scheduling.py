"""Policy section 2, step 4: a slot in a maintenance window, with stakeholders told."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from prefect.deployments import run_deployment
from prefect.runtime import deployment

from domain.events import ChangeSubmitted, Decided, DeploymentScheduled, EventType, payload_of
from domain.models import ChangeRequest, Notice
from domain.schedule import next_slot
from integrations.factory import Adapters
from tasks.common import events_of, last_of, record, step
from tasks.notices import notify
from tasks.tickets import tell


def stakeholders(a: Adapters, change: ChangeRequest) -> list[str]:
    """Who is told about the slot: author, approvers, on-call, rollback owner, watchers."""
    people = {change.author, change.rollback_plan.owner or change.author}
    for event in events_of(a, change, EventType.APPROVAL_RECORDED):
        people.add(payload_of(event, Decided).person_id)
    people.update(p.id for p in a.config.roster.holding("on_call"))
    submitted = last_of(a, change, EventType.CHANGE_SUBMITTED)
    people.update(payload_of(submitted, ChangeSubmitted).watchers if submitted else [])
    return sorted(p for p in people if p and a.config.roster.get(p) is not None)


@step("schedule-deployment")
def schedule_deployment(a: Adapters, change: ChangeRequest) -> datetime:
    """The deployment slot, computed and announced once; later runs read it back.

    The slot is in a maintenance window, outside peak hours and freezes, and at least
    the policy's notice after the stakeholders are told (now); for a category that
    deploys immediately (an emergency), it is now, and they are told it is happening.
    """
    scheduled = last_of(a, change, EventType.DEPLOYMENT_SCHEDULED)
    if scheduled is not None:
        return datetime.fromisoformat(payload_of(scheduled, DeploymentScheduled).slot)
    now = a.now()
    estimate = change.rollback_plan.time_estimate_minutes or 0
    immediate = a.config.policy.categories[change.category].deploy_at == "immediately"
    slot = now if immediate else next_slot(now, a.config.policy.schedule, notified_at=now,
                                           duration=timedelta(minutes=estimate))
    told = stakeholders(a, change)
    local = slot.astimezone(a.config.policy.schedule.zone)
    notify(a, told, Notice(
        to="", change_id=change.id, kind="schedule", link=a.tickets.web_url(change.id),
        subject=f"{change.id} deploys {local:%a %Y-%m-%d %H:%M %Z}",
        body=f"{change.summary}\n{change.service} {change.version} to production at "
             f"{local.isoformat()}.\nRisk: {change.risk_assessment}"))
    record(a, change.id, EventType.DEPLOYMENT_SCHEDULED, slot=slot.isoformat(), notified=told,
           notified_at=now.isoformat(), immediate=immediate)
    tell(a, change.id, f"Scheduled for {local:%a %Y-%m-%d %H:%M %Z}; "
         f"notified: {', '.join(told)}")
    return slot


@step("hand-off-to-slot")
def hand_off(a: Adapters, change: ChangeRequest, slot: datetime) -> dict[str, Any]:
    """Step 4: wait for the slot without holding a worker, as a scheduled deploy run."""
    if deployment.id:
        run_deployment("change-deploy/change-deploy", parameters={"ticket_key": change.id},
                       scheduled_time=slot, timeout=0, as_subflow=False,
                       idempotency_key=f"{change.id}-deploy-{slot.isoformat()}")
    record(a, change.id, EventType.NOTE, text=f"deploy phase scheduled for {slot.isoformat()}")
    return {"change": change.id, "state": "scheduled", "slot": slot.isoformat()}
