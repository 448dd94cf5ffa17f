"""What is due next for a change: the policy's steps, decided from its record alone.

The flows ask `next_step` and carry out its answer, one step at a time, until it says
`Step.DONE` (or that the change must wait for its slot); they hold no states of their
own. Every answer is judged from the change's events and the policy, so a run that
starts again (a resumed suspension, a retry, a run killed mid-way) is told exactly what
is left: it never repeats a decision or deploys twice, and a deployment whose outcome
was never recorded is recovered, not redone.

The order is section 2's seven steps, as the category's policy shapes them:
review (each approving role in turn, or an emergency's verbal approval), staging and QA's
sign-off, the gates, a slot, the people's availability, deploy, verify, roll back and
open the incident when verification fails, an emergency's obligations, close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from domain.approvals import (
    eligible_approvers,
    recorded_verdict,
    required_approvals,
)
from domain.emergency import emergency_obligations
from domain.events import (
    Decided,
    DeploymentScheduled,
    EventType,
    IncidentOpened,
    TicketUpdated,
    payload_of,
)
from domain.lifecycle import ChangeRecord, fold
from domain.models import Category, ChangeEvent, ChangeRequest, Decision, Purpose, Roster
from domain.policy import ApprovalRequirement, Policy
from domain.standard import required_gates


class Step(StrEnum):
    """One step of a change's lifecycle, as a flow carries it out."""

    ASK = "ask for an approval"
    HEAR_VERBAL = "record a verbal approval"
    GRANT = "grant the approval"
    REJECT = "reject the change"
    STAGE = "deploy to staging and test"
    SIGN_OFF = "sign off staging"
    GATES = "evaluate the gates"
    SCHEDULE = "schedule the deployment"
    WAIT_FOR_SLOT = "wait for the slot"
    CONFIRM_AVAILABILITY = "confirm availability"
    DEPLOY = "deploy to production"
    RECOVER = "recover a deployment whose outcome was not recorded"
    VERIFY = "verify production"
    ROLL_BACK = "roll back"
    OPEN_INCIDENT = "open the incident"
    OPEN_OBLIGATIONS = "open the emergency's obligations"
    CLOSE = "close the change"
    DONE = "nothing left to do"


IN_SLOT = frozenset({Step.DEPLOY, Step.RECOVER, Step.VERIFY, Step.ROLL_BACK,
                     Step.OPEN_INCIDENT})
"""Steps taken while holding the service's deployment slot: one deploy per service."""

DEPLOY_PHASE = IN_SLOT | {Step.CONFIRM_AVAILABILITY, Step.OPEN_OBLIGATIONS, Step.CLOSE}
"""Steps the deploy phase takes, started at the change's slot."""


@dataclass(frozen=True)
class Due:
    """What is due: the step, and what the flow needs to carry it out.

    Attributes:
        step: the step.
        requirement: the approval to ask for or hear (`ASK`, `HEAR_VERBAL`).
        role: the role that decides (`ASK`, `SIGN_OFF`, `CONFIRM_AVAILABILITY`).
        purpose: what the decision is for (`ASK`, `SIGN_OFF`, `CONFIRM_AVAILABILITY`).
        asked: who may give the decision, in order.
        where: the step a rejection ends (`REJECT`).
        reasons: why (`REJECT`), or what the flow is told.
        approvers: role -> person of the approvals that counted (`GRANT`).
        slot: the deployment's slot (`WAIT_FOR_SLOT`).
        resume: a step a run started and did not finish (`ROLL_BACK`).
        rolled_back: whether the rollback succeeded (`OPEN_INCIDENT`).
    """

    step: Step
    requirement: ApprovalRequirement | None = None
    role: str | None = None
    purpose: str | None = None
    asked: tuple[str, ...] = ()
    where: str = ""
    reasons: tuple[str, ...] = ()
    approvers: dict[str, str] | None = None
    slot: datetime | None = None
    resume: bool = False
    rolled_back: bool = False


REVIEWING = frozenset({"submitted", "in_review"})
"""States in which the review's approvals are asked for."""

AWAITING_DECISION = frozenset({"in_review", "testing"})
"""States in which an approval request may be waiting: an expired one rejects the change."""

_TESTED = frozenset({"approved", "testing"})
_GATED = _TESTED | {"blocked"}
_SCHEDULED = frozenset({"ready", "scheduled"})
_ROLLING_BACK = frozenset({"deploy_failed", "verify_failed", "rolling_back"})
_ENDED_IN_PRODUCTION = frozenset({"succeeded", "rolled_back", "failed"})


def purpose_of(requirement: ApprovalRequirement) -> Purpose:
    """The kind of decision a requirement asks for."""
    if requirement.verbal:
        return Purpose.VERBAL
    return Purpose.SELF_APPROVAL if requirement.self_approval else Purpose.REVIEW


def _decisions(events: Sequence[ChangeEvent], kind: EventType) -> list[Decided]:
    return [payload_of(e, Decided) for e in events if e.type == kind]


def _decided(decisions: Sequence[Decided], roles: Sequence[str | None], purpose: str) -> bool:
    return any(d.role in roles and d.purpose == purpose for d in decisions)


def _review(change: ChangeRequest, events: Sequence[ChangeEvent], policy: Policy,
            roster: Roster) -> Due:
    """Step 2: the next approval to ask for, or the review's verdict once all are in."""
    decisions = _decisions(events, EventType.APPROVAL_RECORDED)
    verdict = recorded_verdict(change, events, policy, roster)
    sign_off = policy.process.sign_off_role
    review = [r for r in required_approvals(change, policy) if r.role != sign_off]
    if not any(d.decision is Decision.DECLINE for d in decisions):
        taken = set(verdict.approvers.values())  # one person fills one role (section 2)
        for requirement in review:
            if _decided(decisions, (requirement.role, requirement.fallback_role),
                        purpose_of(requirement)):
                continue
            if requirement.verbal:
                return Due(Step.HEAR_VERBAL, requirement=requirement, role=requirement.role)
            asked = tuple(p.id for p in eligible_approvers(requirement, change, roster)
                          if p.id not in taken)
            return Due(Step.ASK, requirement=requirement, role=requirement.role,
                       purpose=purpose_of(requirement), asked=asked)
    missing = [r.role for r in review if r.role not in verdict.approvers]
    if verdict.declined or missing:
        return Due(Step.REJECT, where="review",
                   reasons=tuple(verdict.problems or [f"missing {', '.join(missing)}"]))
    return Due(Step.GRANT, approvers=dict(verdict.approvers))


def _staging(change: ChangeRequest, events: Sequence[ChangeEvent], policy: Policy,
             roster: Roster) -> Due | None:
    """Step 3: staging's tests, then the sign-off; None when staging is not part of it."""
    if "staging_validation" not in required_gates(change, policy) \
            or "staging_validation" in policy.categories[change.category].bypassable_gates:
        return None
    if not any(e.type == EventType.STAGING_PASSED for e in events):
        return Due(Step.STAGE)
    role = policy.process.sign_off_role
    said = [d for d in _decisions(events, EventType.APPROVAL_RECORDED)
            if d.role == role and d.purpose == Purpose.SIGN_OFF]
    if not said:
        taken = set(recorded_verdict(change, events, policy, roster).approvers.values())
        asked = tuple(p.id for p in roster.holding(role)
                      if not change.by(p.id) and p.id not in taken)
        return Due(Step.SIGN_OFF, role=role, purpose=Purpose.SIGN_OFF, asked=asked)
    if said[-1].decision is Decision.DECLINE:
        return Due(Step.REJECT, where="the staging sign-off", reasons=(
            f"{said[-1].person_id} declined as {role}: "
            f"{said[-1].comment or 'no reason given'}",))
    return None


def slot_of(events: Sequence[ChangeEvent]) -> datetime | None:
    """The deployment's slot as last recorded; None if none was."""
    found = [e for e in events if e.type == EventType.DEPLOYMENT_SCHEDULED]
    return datetime.fromisoformat(payload_of(found[-1], DeploymentScheduled).slot) \
        if found else None


def _availability(change: ChangeRequest, events: Sequence[ChangeEvent], policy: Policy,
                  roster: Roster) -> Due | None:
    """Step 5: the engineer, then the reviewer, confirm they are available to deploy."""
    if policy.categories[change.category].deploy_at == "immediately":
        return None
    confirmed = {d.role for d in _decisions(events, EventType.AVAILABILITY_CONFIRMED)
                 if d.decision is Decision.APPROVE}
    reviewer = recorded_verdict(change, events, policy, roster).approvers.get(
        policy.process.reviewer_role)
    for role, person in (("engineer", change.author), ("reviewer", reviewer)):
        if person is not None and role not in confirmed:
            return Due(Step.CONFIRM_AVAILABILITY, role=role, purpose=Purpose.AVAILABILITY,
                       asked=(person,))
    return None


def _incident_filed(events: Sequence[ChangeEvent]) -> bool:
    opened = {payload_of(e, IncidentOpened).incident_id for e in events
              if e.type == EventType.INCIDENT_OPENED}
    filed = {payload_of(e, TicketUpdated).incident_id for e in events
             if e.type == EventType.TICKET_UPDATED}
    return bool(opened) and opened <= filed


def _after_production(change: ChangeRequest, record: ChangeRecord,
                      events: Sequence[ChangeEvent], policy: Policy) -> Due:
    """A change whose deployment ended: its incident, its obligations, then closing."""
    started = [e for e in events if e.type == EventType.DEPLOYMENT_STARTED]
    if not started:
        return Due(Step.DONE)  # it failed in staging: it never reached production
    if record.state != "succeeded" and not _incident_filed(events):
        return Due(Step.OPEN_INCIDENT, rolled_back=record.state == "rolled_back")
    if change.category is Category.EMERGENCY and any(
            o.kind not in record.obligations
            for o in emergency_obligations(started[-1].at, policy)):
        return Due(Step.OPEN_OBLIGATIONS)
    return Due(Step.CLOSE)


def next_step(change: ChangeRequest, events: Sequence[ChangeEvent], policy: Policy,
              roster: Roster, now: datetime) -> Due:
    """What is due next for `change`, given its verified events.

    Args:
        change: the change as submitted (with what the code host added).
        events: its events, in order.
        policy: the policy in force.
        roster: the roster in force.
        now: the time (aware).
    """
    record = fold(events)
    state = record.state
    if state in REVIEWING:
        return _review(change, events, policy, roster)
    if state in _TESTED and (due := _staging(change, events, policy, roster)):
        return due
    if state in _GATED:
        return Due(Step.GATES)
    if state in _SCHEDULED:
        slot = slot_of(events)
        if slot is None:
            return Due(Step.SCHEDULE)
        if slot > now:
            return Due(Step.WAIT_FOR_SLOT, slot=slot)
        return _availability(change, events, policy, roster) or Due(Step.DEPLOY)
    if state == "deploying":
        return Due(Step.RECOVER)
    if state == "deployed":
        return Due(Step.VERIFY)
    if state in _ROLLING_BACK:
        return Due(Step.ROLL_BACK, resume=state == "rolling_back")
    if state in _ENDED_IN_PRODUCTION:
        return _after_production(change, record, events, policy)
    return Due(Step.DONE)
