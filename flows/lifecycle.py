"""Policy sections 1 to 5 as flows: the lifecycle of each change category.

Every category runs the same steps; what differs (who approves, which gates apply,
whether staging and a maintenance window are part of it) is in the policy file:
- `normal-change` and `major-change`: review, staging and QA sign-off, gates, a slot in
  a maintenance window, deploy, verify, close (section 2);
- `standard-change`: the ticket is checked against its pre-approved procedure; if it
  fits, the engineer's own approval and the procedure's gates, then the same deploy; if
  not, it is handled as a normal change, and the reason recorded (section 1);
- `emergency-change`: a verbal approval recorded by who heard it, the bypassable gates
  recorded as bypassed, deployed at once, then obligations opened (section 5).

Each step looks at the change log first and does only what is not yet recorded, so a
run that starts again (a resumed suspension, a retry, a run killed mid-way) never
repeats a decision or deploys twice, and a deployment whose outcome was never recorded
is verified, not redone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from prefect.runtime import flow_run

from domain.approvals import eligible_approvers, required_approvals
from domain.clearance import CLEARED_STATES, Action
from domain.events import Decided, DeploymentScheduled, EventType, payload_of
from domain.models import Category, ChangeRequest, Decision
from domain.policy import ApprovalRequirement
from domain.standard import required_gates
from flows.decisions import approve, decide, record_verbal
from integrations.factory import Adapters, open_adapters
from tasks.approvals import (
    decision_of,
    expire_request,
    expired_requests,
    grant_approval,
    reject_change,
    verdict,
)
from tasks.common import ChangeStopped, events_of, last_of
from tasks.deployment import (
    deploy_slot,
    deploy_to_production,
    previous_version,
    recover_deployment,
    verify_production,
)
from tasks.forms import AVAILABILITY
from tasks.gates import check_gates
from tasks.intake import check_procedure, submit_change
from tasks.integrity import check_intact, clear_for, one_run
from tasks.obligations import open_obligations
from tasks.progress import publish_status, status_kept, stopped, tag_run
from tasks.records import close_change
from tasks.rollback import open_incident, roll_back
from tasks.scheduling import hand_off, schedule_deployment
from tasks.staging import test_in_staging
from tasks.verbal import PURPOSE as VERBAL

DEPLOY_PHASE = ("ready", "scheduled", "deploying", "deployed", "deploy_failed", "verify_failed",
                "rolling_back", "succeeded", "rolled_back", "failed")
"""States the deploy phase takes further: from deploying, through recovery, to closing."""


def state_of(a: Adapters, change: ChangeRequest) -> str:
    """The change's current state in the change log."""
    current = a.change_log.record(change.id)
    return current.state if current else "new"


def run_id() -> str:
    """This flow run's id (or a local marker outside Prefect)."""
    return str(flow_run.id or "local")


def _purpose(requirement: ApprovalRequirement) -> str:
    if requirement.verbal:
        return VERBAL
    return "self-approval" if requirement.self_approval else "review"


def _decided(a: Adapters, change: ChangeRequest, requirement: ApprovalRequirement) -> bool:
    purpose = _purpose(requirement)
    return any(decision_of(a, change, role, purpose) for role in
               (requirement.role, requirement.fallback_role) if role is not None)


def _free(a: Adapters, change: ChangeRequest, people: list[str]) -> list[str]:
    """`people` less those who already approved the change in another role.

    One person fills one role (section 2): a second role's decision by them could never
    count, and once recorded it would leave that role unfilled for good.
    """
    taken = set(verdict(a, change).approvers.values())
    return [p for p in people if p not in taken]


def review(a: Adapters, change: ChangeRequest) -> None:
    """Step 2 (and section 1, 5): each approving role decides, in the category's way.

    A reviewer approves in the UI form; Security too when the trigger matches. A
    standard change's engineer approves their own change the same way; an emergency's
    verbal approval is recorded by whoever heard it.
    """
    if state_of(a, change) not in ("submitted", "in_review"):
        return
    policy, roster = a.config.policy, a.config.roster
    for requirement in required_approvals(change, policy):
        if requirement.role == policy.process.sign_off_role or _decided(a, change,
                                                                          requirement):
            continue
        if requirement.verbal:
            record_verbal(a, change, requirement, run_id())
            continue
        eligible = _free(a, change, [p.id for p in eligible_approvers(requirement, change,
                                                                      roster)])
        answer = approve(a, change, requirement.role, _purpose(requirement), eligible,
                         run_id())
        if answer.decision is Decision.DECLINE:
            break
    judged = verdict(a, change)
    if judged.declined or any(r not in judged.approvers for r in _review_roles(a, change)):
        raise reject_change(a, change, "review",
                            judged.problems or [f"missing {', '.join(judged.missing)}"])
    grant_approval(a, change, judged.approvers)


def _review_roles(a: Adapters, change: ChangeRequest) -> list[str]:
    policy = a.config.policy
    return [r.role for r in required_approvals(change, policy)
            if r.role != policy.process.sign_off_role]


def test_and_sign_off(a: Adapters, change: ChangeRequest) -> None:
    """Step 3: staging deploy and tests, then QA's sign-off through the same form."""
    bypassed = a.config.policy.categories[change.category].bypassable_gates
    staged = "staging_validation" in required_gates(change, a.config.policy)
    if state_of(a, change) not in ("approved", "testing") or not staged \
            or "staging_validation" in bypassed:
        return
    if not events_of(a, change, EventType.STAGING_PASSED):
        test_in_staging(a, change)
    role = a.config.policy.process.sign_off_role
    if decision_of(a, change, role, "staging-sign-off") is None:
        eligible = _free(a, change, [p.id for p in a.config.roster.holding(role)
                                     if not change.by(p.id)])
        answer = approve(a, change, role, "staging-sign-off", eligible, run_id())
        if answer.decision is Decision.DECLINE:
            raise reject_change(a, change, "the staging sign-off",
                                [f"{answer.person_id} declined as {role}: "
                                 f"{answer.comment or 'no reason given'}"])


def confirm_availability(a: Adapters, change: ChangeRequest) -> None:
    """Step 5: the engineer and the reviewer confirm they are available before deploying."""
    reviewer = verdict(a, change).approvers.get(a.config.policy.process.reviewer_role)
    for role, person in (("engineer", change.author), ("reviewer", reviewer)):
        confirmed = [e for e in events_of(a, change, EventType.AVAILABILITY_CONFIRMED)
                     if (d := payload_of(e, Decided)).role == role
                     and d.decision is Decision.APPROVE]
        if confirmed or person is None:
            continue
        answer = decide(a, change, role, AVAILABILITY, [person], run_id(),
                        event_type=EventType.AVAILABILITY_CONFIRMED)
        if Decision(answer.decision) is Decision.DECLINE:
            raise ChangeStopped(f"{change.id}: the {role} ({person}) is not available; "
                                "start the change again when they are")


def deploy_verify_close(a: Adapters, change: ChangeRequest) -> None:
    """Steps 5-7 under the service's deployment slot, rolling back on a failed verify."""
    state = state_of(a, change)
    immediate = a.config.policy.categories[change.category].deploy_at == "immediately"
    if state in ("ready", "scheduled") and not immediate:
        confirm_availability(a, change)
    with deploy_slot(change.service):
        state = state_of(a, change)
        if state in CLEARED_STATES[Action.DEPLOY]:
            clear_for(a, change, Action.DEPLOY)
        previous = previous_version(a, change)
        if state in ("ready", "scheduled"):
            ok = deploy_to_production(a, change, previous) and verify_production(a, change)
        elif state == "deploying":  # killed mid-deploy: look before doing anything
            ok = recover_deployment(a, change, previous)
        elif state == "deployed":
            ok = verify_production(a, change)
        else:
            ok = state == "succeeded"
        if not ok:
            state = state_of(a, change)
            rolled = state == "rolled_back" or (state != "failed" and roll_back(
                a, change, previous, "post-deployment verification failed",
                resume=state == "rolling_back"))
            open_incident(a, change, rolled)
    open_obligations(a, change)
    if state_of(a, change) == "succeeded":
        clear_for(a, change, Action.CLOSE_SUCCEEDED)
    close_change(a, change)


def result_of(a: Adapters, change: ChangeRequest) -> dict[str, Any]:
    """What a lifecycle run returns: the change's state, outcome and incidents now."""
    final = a.change_log.record(change.id)
    assert final is not None
    return {"change": change.id, "state": final.state, "outcome": final.outcome,
            "incidents": final.incidents}


Outcome = dict[str, Any] | State[Any]
"""What a lifecycle run returns: the change's result, or the stop that ended it."""


def run_lifecycle(a: Adapters, ticket_key: str, category: Category) -> Outcome:
    """Take one change through the policy's steps, as far as the policy lets it go.

    `a` is the run's one composition of adapters, built by its entry flow. A stop of the
    policy (refused, rejected, blocked) is the run's outcome (`stopped`).
    """
    try:
        return _lifecycle(a, ticket_key, category)
    except ChangeStopped as stop:
        return stopped(ticket_key, stop)


def lifecycle_run(ticket_key: str, category: Category) -> Outcome:
    """`run_lifecycle` for a flow that is the run's entry: it builds the adapters."""
    with open_adapters() as a:
        return run_lifecycle(a, ticket_key, category)


def _lifecycle(a: Adapters, ticket_key: str, category: Category) -> dict[str, Any]:
    with one_run(a, ticket_key), status_kept(a, ticket_key):
        check_intact(a, ticket_key, "go on")
        change = submit_change(a, ticket_key)
        tag_run(change)
        publish_status(a, change.id)
        current = a.change_log.record(change.id)
        submitted = (current.reclassified_from if current else None) or change.category
        if submitted is not category:
            raise ChangeStopped(f"{ticket_key} is a {submitted.value} change, not "
                                f"{category.value}: start it with change-request")
        if change.category is Category.STANDARD:
            change = check_procedure(a, change)
        if state_of(a, change) in ("in_review", "testing"):
            for request in expired_requests(a, change):
                raise expire_request(a, change, request)
        review(a, change)
        test_and_sign_off(a, change)
        if state_of(a, change) in ("approved", "testing", "blocked"):
            check_gates(a, change)
        if state_of(a, change) == "ready":
            clear_for(a, change, Action.SCHEDULE)
            slot = schedule_deployment(a, change)
            if slot > a.now():
                return hand_off(a, change, slot)
        if state_of(a, change) in DEPLOY_PHASE:
            deploy_verify_close(a, change)
        return result_of(a, change)


@flow(name="normal-change", flow_run_name="{ticket_key} · normal-change", log_prints=True)
def normal_change(ticket_key: str) -> Outcome:
    """A normal change: review, staging and QA sign-off, gates, schedule, deploy, verify.

    Args:
        ticket_key: the change ticket's key, e.g. CHG-101.
    """
    return lifecycle_run(ticket_key, Category.NORMAL)


@flow(name="major-change", flow_run_name="{ticket_key} · major-change", log_prints=True)
def major_change(ticket_key: str) -> Outcome:
    """A major change: the normal steps, approved by the engineering lead and the CISO.

    Args:
        ticket_key: the change ticket's key, e.g. CHG-101.
    """
    return lifecycle_run(ticket_key, Category.MAJOR)


@flow(name="standard-change", flow_run_name="{ticket_key} · standard-change", log_prints=True)
def standard_change(ticket_key: str) -> Outcome:
    """A standard change: its procedure checked, self-approved, gated, deployed, verified.

    Args:
        ticket_key: the change ticket's key, e.g. CHG-101.
    """
    return lifecycle_run(ticket_key, Category.STANDARD)


@flow(name="emergency-change", flow_run_name="{ticket_key} · emergency-change", log_prints=True)
def emergency_change(ticket_key: str) -> Outcome:
    """An emergency: verbal approval, minimum gates, deployed at once, obligations opened.

    Args:
        ticket_key: the change ticket's key, e.g. CHG-101.
    """
    return lifecycle_run(ticket_key, Category.EMERGENCY)


@flow(name="change-deploy", flow_run_name="{ticket_key} · change-deploy", log_prints=True)
def change_deploy(ticket_key: str) -> Outcome:
    """The deploy phase of a scheduled change, started at its slot.

    Args:
        ticket_key: the change ticket's key, e.g. CHG-101.
    """
    try:
        with open_adapters() as a, one_run(a, ticket_key), status_kept(a, ticket_key):
            check_intact(a, ticket_key, "deploy")
            change = submit_change(a, ticket_key)
            tag_run(change)
            scheduled = last_of(a, change, EventType.DEPLOYMENT_SCHEDULED)
            slot = payload_of(scheduled, DeploymentScheduled).slot if scheduled else None
            if slot is None or datetime.fromisoformat(slot) > a.now():
                raise ChangeStopped(f"{ticket_key} is not due: its slot is "
                                    f"{slot or 'not set'}")
            deploy_verify_close(a, change)
            return result_of(a, change)
    except ChangeStopped as stop:
        return stopped(ticket_key, stop)

